"""The real thing: `tether serve` as a process (uvicorn on 127.0.0.1), keys made with `tether
keys create`, a run submitted and followed live over server-sent events with httpx, the stream
cut and resumed with Last-Event-ID, concurrent retried POSTs with one idempotency key."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ROOT
from .test_api_stream import parse_sse

AGENTS = """\
echo: tests.server.api_support:echo
counter: tests.server.api_support:counter
assistant:
  ref: tests.server.api_support:assistant
  guards: tests.server.api_support:GUARDS
"""


def _listening_on(port: int) -> list[str]:
    """Local addresses of sockets listening on `port` (from /proc/net/tcp)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tether_serve: Callable[..., Any]
           ) -> Iterator[dict[str, Any]]:
    with tether_serve(tmp_path_factory.mktemp("serve"), AGENTS,
                      keys={"operator": ("acme", "operator", None)}) as served:
        yield {"base": served.base, "port": served.port, "proc": served.proc,
               "headers": {"Authorization": f"Bearer {served.keys['operator']}"}}


def test_binds_loopback_only_by_default(server: dict[str, Any]) -> None:
    assert _listening_on(server["port"]) == ["127.0.0.1"]
    r = httpx.options(server["base"] + "/v1/runs", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers  # CORS off


def test_a_run_streamed_live_cut_and_resumed(server: dict[str, Any]) -> None:
    base, h = server["base"], server["headers"]
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        run = c.post("/v1/runs", json={"agent": "counter", "input": 2}).json()["run"]
        seen: list[dict[str, Any]] = []
        with c.stream("GET", f"/v1/runs/{run['id']}/events") as r:  # live, then cut
            buf = ""
            for chunk in r.iter_text():
                buf += chunk
                seen = [f for f in parse_sse(buf) if f["event"] == "event"]
                if any(f["data"]["kind"] == "signal_waiting" for f in seen):
                    break
        last = seen[-1]["id"]
        assert c.post(f"/v1/runs/{run['id']}/signals",
                      json={"name": "go"}).status_code == 202
        with c.stream("GET", f"/v1/runs/{run['id']}/events",
                      headers={"Last-Event-ID": last}) as r:
            rest = parse_sse("".join(r.iter_text()))  # ends by itself when the run finishes
        assert rest[-1]["event"] == "end" and rest[-1]["data"]["status"] == "succeeded"
        later = [f for f in rest if f["event"] == "event"]
        ids = [int(f["id"]) for f in seen + later]
        assert ids == list(range(1, len(ids) + 1))  # nothing lost, nothing twice
        assert later[-1]["data"]["kind"] == "run_completed"
        assert c.get(f"/v1/runs/{run['id']}").json()["run"]["result"] == 0 + 1


def test_concurrent_retried_posts_make_one_run(server: dict[str, Any]) -> None:
    base, h = server["base"], server["headers"]
    body = {"agent": "echo", "input": {"order": 7}, "idempotency_key": "order-7"}

    def post(_: int) -> tuple[int, str, bool]:
        with httpx.Client(base_url=base, headers=h, timeout=30) as c:
            r = c.post("/v1/runs", json=body)
            return r.status_code, r.json()["run"]["id"], r.json()["created"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(32)))
    assert len({run_id for _, run_id, _ in answers}) == 1
    assert sorted(code for code, _, _ in answers) == [200] * 31 + [201]
    assert sum(created for _, _, created in answers) == 1
    with httpx.Client(base_url=base, headers=h) as c:
        runs = c.get("/v1/runs", params={"agent": "echo"}).json()["runs"]
        assert [r["idempotency_key"] for r in runs].count("order-7") == 1
        other = c.post("/v1/runs", json={**body, "input": {"order": 8}})
        assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
        via_header = c.post("/v1/runs", json={"agent": "echo", "input": {"order": 7}},
                            headers={"Idempotency-Key": "order-7"})
        assert via_header.status_code == 200 and via_header.json()["created"] is False


@pytest.mark.slow
def test_no_worker_server_and_a_separate_worker_process(
        tmp_path: Path, tether_serve: Callable[..., Any]) -> None:
    """`tether serve --no-worker` only queues; a `tether worker` started without any guards
    executes the run under the guards its agent declared: the destructive call is denied."""
    env = {**os.environ, "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt")}
    worker: subprocess.Popen[bytes] | None = None
    with tether_serve(tmp_path, AGENTS, "--no-worker",
                      keys={"operator": ("acme", "operator", None)}) as served:
        try:
            with httpx.Client(base_url=served.base, timeout=30, headers={
                    "Authorization": f"Bearer {served.keys['operator']}"}) as c:
                run = c.post("/v1/runs", json={"agent": "assistant", "input": "wipe prod"})
                run_id = run.json()["run"]["id"]
                time.sleep(1.0)
                assert c.get(f"/v1/runs/{run_id}").json()["run"]["status"] == "queued"
                worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--db",
                                           str(tmp_path / "tether.db")], cwd=ROOT,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=env)
                deadline = time.monotonic() + 60
                while (body := c.get(f"/v1/runs/{run_id}").json())["run"]["status"] \
                        != "succeeded":
                    assert time.monotonic() < deadline, body["run"]
                    time.sleep(0.1)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
    assert any(row["decision"].startswith("deny") for row in body["timeline"])
    assert not served.ledger.exists()  # wipe never ran


@pytest.mark.parametrize("args,message", [
    ([], "no agents to serve"),
    (["--agents", "missing.yaml"], "cannot read agents file 'missing.yaml'"),
    (["--agent", "greet"], "expected NAME=module:function"),
    (["--agent", "x=tests.server.nowhere:agent"], "cannot start the server"),
    (["--agent", "x=tests.server.api_support:echo", "--guards", "tests.server.api_support:nope"],
     "cannot start the server"),
    (["--agent", "x=tests.server.api_support:echo", "--concurrency", "0"], "--concurrency"),
])
def test_serve_refuses_a_deployment_it_cannot_load(tmp_path: Path, args: list[str],
                                                   message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tether", "serve", *args, "--port", "1",
                           "--db", str(tmp_path / "t.db")], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_serve_bounds_the_streams_of_a_key_as_told(tmp_path: Path,
                                                   tether_serve: Callable[..., Any]) -> None:
    """`--max-streams-per-key`: the CLI's way to the bound (`ServerConfig.max_streams_per_key`)."""
    agents = "waiter: tests.server.api_support:waiter\n"
    with tether_serve(tmp_path, agents, "--max-streams-per-key", "1",
                      keys={"operator": ("acme", "operator", None)}) as served, \
            httpx.Client(base_url=served.base, timeout=30, headers={
                "Authorization": f"Bearer {served.keys['operator']}"}) as c:
        run = c.post("/v1/runs", json={"agent": "waiter"}).json()["run"]
        with c.stream("GET", f"/v1/runs/{run['id']}/events") as first:
            assert first.status_code == 200
            second = c.get(f"/v1/runs/{run['id']}/events")
            assert second.status_code == 429, second.text
            assert second.json()["error"] == "too_many_streams"
