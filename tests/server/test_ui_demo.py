"""`python -m tether.demo --serve`: the web UI on the demo's database, served from the demo's
process while the demo's own runs execute there (a real uvicorn on 127.0.0.1, a real browser
session by httpx: the login form, the cookie, the pages)."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from tether import Context, Tether
from tether.demo._app import _parser
from tether.demo._ui import serving

from .ui_support import UiUser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def noted(ctx: Context, text: str) -> str:
    return str(await ctx.step("note", str.upper, text))


def test_serve_prints_the_url_and_a_key_that_shows_the_demo_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    out = io.StringIO()
    console = Console(file=out, width=200)
    port = _free_port()
    with serving(db, port, console) as (url, key):
        assert url == f"http://127.0.0.1:{port}/ui"
        printed = out.getvalue()
        assert url in printed and key in printed
        t = Tether(db)  # the demo's own runs, executed in the demo's process
        try:
            record = asyncio.run(t.run(noted, "<b>hello</b>"))
        finally:
            t.close()
        assert record.status == "succeeded"
        with httpx.Client(base_url=url.removesuffix("/ui"), timeout=30) as client:
            user = UiUser(client)
            assert user.login(key).status_code == 303
            runs = user.get("/ui/runs").text
            assert record.id in runs and "succeeded" in runs
            page = user.get(f"/ui/runs/{record.id}").text
            assert "<b>hello</b>" not in page and "HELLO" in page
            assert UiUser(httpx.Client(base_url=url.removesuffix("/ui"))).login(
                "tk_wrong").status_code == 401
    with socket.socket() as s:  # the server is gone when the block ends
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_demo_serves_only_when_asked() -> None:
    assert _parser().parse_args([]).serve is False
    args: Any = _parser().parse_args(["--serve", "--port", "8411"])
    assert args.serve is True and args.port == 8411
    assert re.search(r"--serve", _parser().format_help())
