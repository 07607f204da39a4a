"""`tether serve` on a port something already listens on. Before: it printed "tether serve:
http://127.0.0.1:PORT/v1 …" as if it served there, then uvicorn logged "[Errno 98] … address
already in use" and the process exited 3. Now: one error line naming the port and what to do,
exit 1, and no banner."""

from __future__ import annotations

import socket
from pathlib import Path

from .cli_support import tether

AGENT = "async def greet(ctx, name):\n    return f'Hello, {name}!'\n"


def test_a_port_in_use_is_refused_before_the_banner(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(AGENT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = tether("serve", "--port", str(port), "--agent", "greet=shop.py:greet",
                      db=tmp_path / "t.db", cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"--port {port}: cannot listen there" in " ".join(proc.stderr.split())
    assert "tether serve: http" not in proc.stdout and "Traceback" not in proc.stderr
