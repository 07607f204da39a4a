"""Runs with values of megabytes through the API and the web UI: a list of runs leaves big
values out and says so, a run's page shows a bounded part, the run itself (GET
/v1/runs/{id}) still has its values whole. Before, one run with a 300 MB result made the list
105 MB and its page 314 MB of HTML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import api_support as S
from .ui_support import user


@pytest.fixture
def api(tmp_path: Path) -> Iterator[S.Api]:
    with S.running(tmp_path) as api:
        yield api


def test_big_values_are_left_out_of_lists_and_cut_on_pages(api: S.Api) -> None:
    big = "row;" * 200_000  # 800 KB: under the request body limit
    run = api.submit("echo", {"report": big})
    api.wait(run["id"], "succeeded")
    small = api.submit("echo", "small")
    api.wait(small["id"], "succeeded")

    listed = api.client.get("/v1/runs", headers=api.as_("viewer"))
    assert len(listed.content) < 20_000
    by_id = {r["id"]: r for r in listed.json()["runs"]}
    assert by_id[run["id"]]["omitted"] == ["input", "result"]
    assert by_id[run["id"]]["input"] is None and by_id[run["id"]]["result"] is None
    assert by_id[small["id"]]["omitted"] == [] and by_id[small["id"]]["result"] == "small"

    detail = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("viewer")).json()
    assert detail["run"]["result"] == {"report": big}  # whole, when asked for

    op = user(api, "operator")
    page = op.get(f"/ui/runs/{run['id']}").text
    assert len(page) < 200_000 and "GET /v1/runs/{id} has it whole" in page
    rows = op.get("/ui/runs").text
    assert len(rows) < 50_000 and "input, result: open the run" in rows
