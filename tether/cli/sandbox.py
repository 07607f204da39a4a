"""``tether sandbox run`` (``tether doctor`` lives in ``doctor.py``).

``sandbox run FILE`` runs a file in a fresh sandbox and prints the result as JSON; the language
follows the extension (``.py`` python, ``.sh``/``.bash`` bash).
Exit codes: ``sandbox run`` returns the program's exit code (124 on timeout, 125 if the
sandbox could not run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tether.sandbox import Language


def _emit(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _script(file: Path, timeout: float) -> str:
    """The program to run, or a usage error (exit 2) naming the flag or file: the request
    refused a timeout of 0 with a ValueError traceback, and a binary file (a database given by
    mistake) failed decoding with a UnicodeDecodeError traceback."""
    from tether.cli._common import fail

    if not timeout > 0:  # also NaN
        fail(f"--timeout {timeout:g}: must be more than 0 seconds, e.g. --timeout 30", 2)
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{file}: not a text file (byte {exc.start} is not UTF-8); sandbox run takes a "
             ".py or .sh script", 2)
    except OSError as exc:
        fail(f"{file}: cannot read it ({exc.strerror or exc})", 2)


def sandbox_run(
    file: Annotated[Path, typer.Argument(help="A .py or .sh file to run", exists=True,
                                         dir_okay=False, readable=True)],
    backend: Annotated[str, typer.Option(help="bwrap | gvisor | unsafe-local")] = "",
    timeout: Annotated[float, typer.Option(help="wall-clock seconds")] = 30.0,
    workspace: Annotated[
        Path | None,
        typer.Option(help="directory mounted at /workspace; changes are written back",
                     file_okay=False),
    ] = None,
) -> None:
    """Run FILE in a fresh sandbox and print the result as JSON."""
    from tether.sandbox import Sandbox, SandboxError, SandboxUnavailable, default_backend_name

    language: Language = "bash" if file.suffix in (".sh", ".bash") else "python"
    code = _script(file, timeout)
    try:
        sb = Sandbox(backend or default_backend_name())
        req = sb.request(code, language=language, timeout=timeout)
        if workspace is not None:
            workspace.mkdir(parents=True, exist_ok=True)
            out = sb.run_in_dir(workspace, req)
        else:
            out = sb.run_request(req)
    except SandboxUnavailable as e:
        _emit({"error": str(e), "backend": e.backend, "fix": e.fix})
        raise typer.Exit(125) from None
    except SandboxError as e:
        _emit({"error": str(e)})
        raise typer.Exit(125) from None
    r = out.result
    _emit({
        "backend": r.backend,
        "exit_code": r.exit_code,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "stdout_truncated": r.stdout_truncated,
        "stderr_truncated": r.stderr_truncated,
        "duration_ms": r.duration_ms,
        "timed_out": r.timed_out,
        "error": r.error,
        "resources": r.resources,
        "files": {"added": r.files.added, "modified": r.files.modified,
                  "deleted": r.files.deleted},
        "workspace_error": r.workspace_error,
        "limits_enforced": r.limits_enforced,
    })
    if r.timed_out:
        raise typer.Exit(124)
    raise typer.Exit(r.exit_code if r.exit_code is not None else 1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Run code in ephemeral sandboxes.", no_args_is_help=True)
    group.command("run")(sandbox_run)
    app.add_typer(group, name="sandbox")
