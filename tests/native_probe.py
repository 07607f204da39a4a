"""Run the local model once in a child process, so a native crash cannot take the suite with it.

llama.cpp code that the CPU cannot execute kills the process with SIGILL; inside pytest that is the
whole run. The probe loads the small model and decodes a few tokens in a subprocess first: if that
dies from a signal, the probe's own test fails with the signal's name and every other `model` test
is skipped with a pointer to it — one failure, not a dead suite.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from functools import cache

PROBE = """
from tether.models import SMALL_WEIGHTS, Message
from tether.models.local import LocalModel
import asyncio
m = LocalModel(SMALL_WEIGHTS, n_ctx=512, allow_download=False, max_tokens=4)
r = asyncio.run(m.complete([Message.user("Say OK.")]))
print("probe ok:", r.usage.output_tokens, "tokens")
"""
PROBE_TEST = "tests/models/test_models_portable.py::test_local_model_decodes_in_a_subprocess"


@cache
def run_probe() -> subprocess.CompletedProcess[str] | None:
    """The probe's outcome, once per session; None without llama-cpp-python."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TETHER_MODEL_DOWNLOAD": "0"})


def crash_reason(returncode: int) -> str | None:
    """What a negative return code (death by a signal) means, in words; None for an exit."""
    if returncode >= 0:
        return None
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    hint = " (illegal instruction: the build uses CPU features this machine lacks)" \
        if name == "SIGILL" else ""
    return f"the local model's process was killed by {name}{hint}"


def local_model_crash() -> str | None:
    """None unless the probe died from a signal (an ordinary error is left to the tests)."""
    proc = run_probe()
    return None if proc is None else crash_reason(proc.returncode)
