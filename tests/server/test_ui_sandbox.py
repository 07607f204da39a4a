"""The run page's sandbox outputs: a real bubblewrap execution of a run the embedded worker
executes, shown with its exit code, stdout, stderr and the files it wrote (escaped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.runtime import Tether

from . import api_support as S
from .ui_support import UiUser, sandboxed

pytestmark = [pytest.mark.sandbox]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[S.Api]:
    with S.running(tmp_path) as api:
        yield api


def test_the_run_page_shows_what_the_sandbox_printed_and_wrote(api: S.Api,
                                                                tmp_path: Path) -> None:
    t = Tether(tmp_path / "tether.db")
    try:
        run_id = t.submit(sandboxed, None, tenant="acme")
    finally:
        t.close()
    api.wait(run_id, "succeeded", timeout=60)
    user = UiUser.of(api.app)
    assert user.login(api.keys["viewer"]).status_code == 303
    page = user.get(f"/ui/runs/{run_id}").text
    section = page.split("<h2>Sandbox outputs</h2>", 1)[1]
    assert "exit 0" in section and "wrote out.txt" in section
    assert "&lt;b&gt;42&lt;/b&gt;" in section and "<b>42</b>" not in section
    assert '<pre class="stderr">careful' in section
    other = UiUser.of(api.app)
    assert other.login(api.keys["b-viewer"]).status_code == 303
    assert other.get(f"/ui/runs/{run_id}").status_code == 404
