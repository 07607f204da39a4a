"""`python -m tether.demo --serve`: the web UI of `tether serve` on the demo's database, so a new
user can watch the demo's runs in a browser while they happen (and after).

The server runs in a thread of the demo's process with no worker of its own: the demo executes
its runs itself, the server only reads the journal they write. An admin key of the demo's tenant
is made for the session and printed with the address.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape

TENANT = "default"  # the tenant `Tether.run` gives the demo's runs
AGENTS = {"countries": "tether.demo._app:demo_agent",
          "analysis": "tether.demo.analysis:analysis_agent"}


@contextlib.contextmanager
def serving(db: str, port: int, console: Console, host: str = "127.0.0.1"
            ) -> Iterator[tuple[str, str]]:
    """Serve the UI for `db` until the block ends; yields (the UI's URL, the login key)."""
    import uvicorn

    from tether import Tether
    from tether.server.api import ServerConfig, create_app
    from tether.server.keys import ApiKeys

    t = Tether(db)
    try:
        key, _ = ApiKeys(t.store).create(TENANT, "admin", "demo")
    finally:
        t.close()
    app = create_app(ServerConfig(db=db, agents=dict(AGENTS),
                                  embedded_worker=False))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           server_header=False))
    thread = threading.Thread(target=server.run, name="tether-demo-ui", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the web UI could not start on {host}:{port} (is the port in "
                             "use? pass --port)")
        time.sleep(0.05)
    url = f"http://{host}:{port}/ui"
    console.print(f"[bold]web UI[/bold]: {url}  — log in with this key: {escape(key)}",
                  soft_wrap=True)
    try:
        yield url, key
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def keep_serving(console: Console, url: str, stop: Any = None) -> None:
    """Block until Ctrl-C (or `stop`, a threading.Event, is set), saying where to look."""
    console.print(f"[bold]the demo is done; its runs stay at {url}[/bold] — Ctrl-C to stop",
                  soft_wrap=True)
    try:
        while stop is None or not stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        console.print("stopped")
