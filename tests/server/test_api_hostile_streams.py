"""Event streams attacked: one key opening streams without end, and a revoked key's stream.

Before: a key could hold any number of streams (each polls the store until its run ends; 1,500
from one viewer key slowed every other tenant ~100x), and a stream opened before `tether keys
revoke` kept carrying the run's new events — a signal's payload sent after the revocation
reached the revoked key.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx

from tether.runtime import Tether
from tether.server.keys import ApiKeys

from .api_hostile_support import live


def test_a_key_holds_a_bounded_number_of_streams_and_gets_them_back(tmp_path: Path) -> None:
    with live(tmp_path, max_streams_per_key=4) as served:
        run_id = served.submit("waiter")
        served.wait(run_id, "waiting")

        async def attack() -> tuple[list[int], int, int, int]:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(base_url=served.base, timeout=30,
                                         limits=limits) as c:
                url = f"/v1/runs/{run_id}/events"
                opened = [await c.send(c.build_request("GET", url,
                                                       headers=served.auth("viewer")),
                                       stream=True) for _ in range(4)]
                extra = await c.send(c.build_request("GET", url,
                                                     headers=served.auth("viewer")),
                                     stream=True)  # headers come at once, 200 or not
                if extra.status_code == 429:
                    refusal = (await extra.aread()).decode()
                    assert "too_many_streams" in refusal and "(4)" in refusal, refusal
                await extra.aclose()
                other = await c.get(url, params={"follow": "false"},
                                    headers=served.auth("operator"))  # another key: served
                for r in opened:
                    await r.aclose()
                deadline = time.monotonic() + 10  # the server notices the closed streams
                while True:
                    again = await c.send(c.build_request(
                        "GET", url, headers=served.auth("viewer")), stream=True)
                    await again.aclose()
                    if again.status_code == 200 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                return [r.status_code for r in opened], extra.status_code, \
                    other.status_code, again.status_code

        opened, extra, other, again = asyncio.run(attack())
        assert opened == [200] * 4 and extra == 429 and other == 200 and again == 200


def test_a_finished_runs_stream_gives_its_slot_back(tmp_path: Path) -> None:
    with live(tmp_path, max_streams_per_key=2) as served, served.client() as c:
        run_id = served.submit("echo", 1)
        served.wait(run_id, "succeeded")
        for _ in range(6):  # each ends by itself: more than the limit, one after another
            r = c.get(f"/v1/runs/{run_id}/events", headers=served.auth("viewer"))
            assert r.status_code == 200 and "event: end" in r.text, r.text


def test_a_revoked_keys_open_stream_ends_and_carries_nothing_new(tmp_path: Path) -> None:
    with live(tmp_path, stream_key_recheck=0.2) as served:
        t = Tether(tmp_path / "tether.db")
        try:
            keys = ApiKeys(t.store)
            doomed, who = keys.create("acme", "viewer", "doomed")
            run_id = served.submit("waiter")
            served.wait(run_id, "waiting")
            received: list[str] = []
            ended = threading.Event()

            def read() -> None:
                with served.client() as c, c.stream(
                        "GET", f"/v1/runs/{run_id}/events",
                        headers={"Authorization": f"Bearer {doomed}"}) as r:
                    assert r.status_code == 200
                    for chunk in r.iter_text():
                        received.append(chunk)
                ended.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            deadline = time.monotonic() + 10
            while "signal_waiting" not in "".join(received):
                assert time.monotonic() < deadline, received
                time.sleep(0.05)
            assert keys.revoke(who.key_id)
            ended_by_itself = ended.wait(5)
            with served.client() as c:  # the run goes on: its next events are not the key's
                r = c.post(f"/v1/runs/{run_id}/signals",
                           json={"name": "go", "payload": "after the revocation"},
                           headers=served.auth("operator"))
                assert r.status_code == 202
            served.wait(run_id, "succeeded")
            ended.wait(10)
            text = "".join(received)
            assert "after the revocation" not in text, text
            assert ended_by_itself and "revoked" in text, text
        finally:
            t.close()
