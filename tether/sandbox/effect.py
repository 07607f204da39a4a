"""``ctx.exec(...)``: a sandbox exec as one journaled step, with the run's persistent workspace.

The workspace is a manifest (path -> sha256 of an artifact) kept in ``ctx.scratch``. It is
rebuilt on replay from each exec step's recorded result, so no sandbox or directory outlives an
exec: a live exec materialises the manifest's files into a fresh sandbox, runs, stores changed
files as artifacts and records the new manifest. A run resumed on another worker or machine
(same store) sees the same files. The step is idempotent: a fresh sandbox rebuilt from the same
manifest can safely run again if a worker died mid-exec; a completed exec is never re-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tether.sandbox._fsafe import check_relpath
from tether.sandbox._registry import default_backend_name, get_backend
from tether.sandbox._sandbox import shared_sandbox
from tether.sandbox._types import Language, Limits
from tether.sandbox._workspace import digest
from tether.store import vocabulary

MANIFEST_KEY = "tether.sandbox.manifest"
STEP_NAME = vocabulary.EXEC_STEP


class _ArtifactStore(Protocol):
    def put_artifact(self, data: bytes) -> str: ...

    def get_artifact(self, digest: str) -> bytes: ...


class ExecContext(Protocol):
    """What this module needs from ``tether.runtime.Context``, declared here so that the sandbox
    imports nothing of the runtime (which sits above it and imports this module lazily)."""

    scratch: dict[str, Any]

    @property
    def run_id(self) -> str: ...

    @property
    def store(self) -> Any: ...

    @property
    def replaying(self) -> bool: ...

    async def step(self, name: str, fn: Any, *args: Any, idempotent: bool | None = None,
                   timeout: float | None = None, meta: dict[str, Any] | None = None) -> Any: ...


def workspace_manifest(ctx: ExecContext) -> dict[str, str]:
    """The run's current workspace (path -> artifact digest), as of the last exec."""
    return dict(ctx.scratch.get(MANIFEST_KEY, {}))


def read_workspace_file(ctx: ExecContext, path: str) -> bytes:
    """A workspace file's content, from the artifact store (no sandbox needed)."""
    manifest = workspace_manifest(ctx)
    if path not in manifest:
        raise FileNotFoundError(f"{path!r} is not in the run's workspace")
    data: bytes = ctx.store.get_artifact(manifest[path])
    return data


def _live_exec(
    store: _ArtifactStore,
    base: dict[str, str],
    request: dict[str, Any],
    extra: dict[str, bytes],
) -> dict[str, Any]:
    files = {path: store.get_artifact(d) for path, d in base.items()}
    for data in extra.values():  # inputs the exec may leave untouched must be restorable too
        store.put_artifact(data)
    files.update(extra)
    sb = shared_sandbox(request["backend"])
    code, argv = request.get("code"), request.get("argv")
    req = sb.request(
        code,
        language=request["language"],
        argv=argv,
        stdin=request.get("stdin") or b"",
        timeout=request.get("timeout"),
        limits=request.get("limits"),
        env=request.get("env"),
    )
    out = sb.run_request(req, files)
    stored: dict[str, str] = {}
    for path, data in out.changed.items():
        d = store.put_artifact(data)
        if d != digest(data):
            raise RuntimeError(f"artifact store returned digest {d} for {path}, expected sha256")
        stored[path] = d
    result = out.result.to_dict()
    result["manifest"] = out.manifest if out.result.workspace_error is None else {
        **{p: d for p, d in base.items() if p not in out.result.files.deleted},
        **out.manifest,
    }
    result["artifacts"] = stored
    return result


async def exec_effect(
    ctx: ExecContext,
    code_or_command: str | Sequence[str],
    *,
    language: Language = "python",
    backend: str | None = None,
    timeout: float | None = None,
    limits: Mapping[str, int] | Limits | None = None,
    files: Mapping[str, bytes | str] | None = None,
    stdin: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run code (a string, in ``language``) or a command (a list of strings) in a fresh sandbox.

    ``files`` are added to the workspace first. Returns the ``ExecResult`` as a dict plus
    ``manifest`` (the workspace after the exec) and ``artifacts`` (digests of changed files).
    """
    name = backend or default_backend_name()
    if not ctx.replaying:
        get_backend(name)  # unavailable -> SandboxUnavailable now, never journaled as a result
    extra: dict[str, bytes] = {}
    for path, content in (files or {}).items():
        check_relpath(path)
        extra[path] = content.encode() if isinstance(content, str) else bytes(content)
    if isinstance(limits, Limits):
        from dataclasses import asdict

        limits = asdict(limits)
    request: dict[str, Any] = {
        "backend": name,
        "language": language,
        "timeout": timeout,
        "limits": dict(limits) if limits else None,
        "env": dict(env) if env else None,
        "stdin": stdin.encode() if isinstance(stdin, str) else stdin,
        "input_files": {p: digest(d) for p, d in extra.items()},
    }
    if isinstance(code_or_command, str):
        request["code"] = code_or_command
    else:
        request["argv"] = [str(a) for a in code_or_command]
    base = workspace_manifest(ctx)
    store = ctx.store

    def run_exec(journal_view: dict[str, Any]) -> dict[str, Any]:
        return _live_exec(store, base, request, extra)

    view = {k: v for k, v in request.items() if k != "stdin"}
    result: dict[str, Any] = await ctx.step(
        STEP_NAME,
        run_exec,
        view,
        idempotent=True,
        meta={"kind": "exec", "backend": name, "language": language if "code" in request
              else "command"},
    )
    ctx.scratch[MANIFEST_KEY] = dict(result.get("manifest", {}))
    return result
