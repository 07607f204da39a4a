"""The demo in a user's terminal: the approval prompt answers only what is typed after it is
shown, and the commands it prints to inspect the journal work from the user's shell."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ASK = """
import sys
from tether.cli._safe import SafeConsole
from tether.demo._app import ask
print("typed-ahead window", flush=True)
import time; time.sleep(1.0)
print("ANSWER=" + ask(SafeConsole(), "approve? "), flush=True)
"""


def test_the_approval_prompt_ignores_keys_typed_before_it_appeared() -> None:
    """A `y` typed while the model worked (a minute before the prompt) approved the request
    the prompt then showed."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", ASK], stdin=terminal, stdout=terminal,
                            stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ,
                                                                    "PYTHONPATH": str(ROOT)})
    os.close(terminal)
    out = b""
    try:
        while b"typed-ahead window" not in out:
            out += os.read(controller, 1024)
        os.write(controller, b"y\n")  # before the prompt
        while b"approve? " not in out:
            out += os.read(controller, 1024)
        time.sleep(0.2)
        os.write(controller, b"n\n")  # the answer to the prompt
        proc.wait(timeout=30)
        while True:
            try:
                chunk = os.read(controller, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        proc.kill()
        os.close(controller)
    assert b"ANSWER=n" in out, out


def test_the_inspect_commands_work_without_the_venv_on_path() -> None:
    """After `make demo` the venv is not activated: `tether` alone is not found."""
    env = {**os.environ, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c",
                          "from tether.demo._app import tether_command; print(tether_command())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(Path(sys.executable).parent / "tether"), out
    assert subprocess.run([out, "--help"], capture_output=True, env=env).returncode == 0


def test_a_bad_flag_points_at_no_journal() -> None:
    proc = subprocess.run([sys.executable, "-m", "tether.demo", "--model", "gpt-4o-mini"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "journal stays" not in proc.stdout, proc.stdout
