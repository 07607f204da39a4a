"""``tether tools list|lock|check|add-mcp``: inspect tools and guard their contracts against drift.

Sources are given with ``--module pkg.mod`` (or ``path/to/file.py``, or ``pkg.mod:registry``),
``--openapi spec.yaml[=BASE_URL]`` (or a live ``http://host/openapi.json``) and ``--mcp mcp.yaml``
(MCP servers, written by ``add-mcp``), all repeatable. ``lock`` records these sources inside
``tools.lock.json``, so ``check`` (e.g. in CI) and ``list`` need no flags afterwards; ``check``
connects to the live sources again (MCP servers, OpenAPI URLs) and compares. With no flags and
no lock file, ``mcp.yaml`` (what ``add-mcp`` writes) is the source when it exists.
Exit codes of ``check``: 0 no drift, 1 drift found, 2 bad usage or sources that fail to load.

`tether.tools` is imported inside the commands: registering them must not cost `tether --help`
the tools library (httpx, jsonschema, pydantic).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tether.cli._common import err_console

if TYPE_CHECKING:
    from tether.tools import ToolRegistry, ToolSources

_FILE_MODULE = "_tether_tools_"  # how the tools library names a module it loaded from a file
_MCP_CONFIG = "mcp.yaml"  # tether.tools.mcp.DEFAULT_MCP_CONFIG (not imported: keep --help cheap)

ModuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--module", "-m",
        help="Python module with @tool functions (pkg.mod, pkg.mod:registry or file.py). "
        "Repeatable.",
    ),
]
OpenAPIOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--openapi", "-o",
        help="OpenAPI 3 spec, optionally with its base URL: spec.yaml=http://host:port. "
        "Repeatable.",
    ),
]
MCPOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mcp",
        help="MCP servers config (YAML, written by `tether tools add-mcp`). Repeatable.",
    ),
]
LockOpt = Annotated[
    Path | None,
    typer.Option("--lock", "-l", help="Lock file path (default tools.lock.json).",
                 dir_okay=False),
]


def _lock_path(lock: Path | None) -> Path:
    from tether.tools import DEFAULT_LOCK

    return lock if lock is not None else Path(DEFAULT_LOCK)


def _source_text(source: str) -> str:
    """A tool's source as the user gave it: a tool from `--module path/to/file.py` is recorded
    under the synthetic module name its file was imported as; show the file instead."""
    module, sep, name = source.partition(":")
    loaded = sys.modules.get(module) if module.startswith(_FILE_MODULE) else None
    path = getattr(loaded, "__file__", None)
    if not path:
        return source
    shown = os.path.relpath(path)
    return f"{path if shown.startswith('..') else shown}{sep}{name}"


def _fail(message: str, code: int = 2) -> typer.Exit:
    # as every command reports an error: one line, never wrapped, and a bracket in a path or
    # spec name (`spec.yaml[=BASE_URL]`) is text, not rich markup
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(message, markup=False, soft_wrap=True)
    return typer.Exit(code)


def _resolve(
    modules: list[str] | None, openapi: list[str] | None, lock: Path, *, need_lock: bool,
    mcp: list[str] | None = None,
) -> tuple[ToolRegistry, ToolSources, Path]:
    """Sources from the flags if any, else from the lock file; returns (registry, sources, base)."""
    from tether.tools import OpenAPISource, ToolError, ToolSources, load_sources, read_lock

    try:
        if modules or openapi or mcp:
            sources = ToolSources(
                modules=list(modules or []),
                openapi=[OpenAPISource.parse(o) for o in openapi or []],
                mcp=list(mcp or []),
            )
            base = Path.cwd()
        elif lock.exists() or need_lock:
            sources = ToolSources.from_json(read_lock(lock).get("sources"))
            base = lock.resolve().parent
            if not sources:
                raise _fail(
                    f"{lock} records no sources; pass --module, --openapi and/or --mcp"
                )
        elif Path(_MCP_CONFIG).exists():  # the servers `tether tools add-mcp` configured here
            sources = ToolSources(mcp=[_MCP_CONFIG])
            base = Path.cwd()
        else:
            raise _fail(
                "no tool sources: pass --module pkg.mod, --openapi spec.yaml[=BASE_URL] and/or "
                f"--mcp mcp.yaml (or run where {lock} records them)"
            )
        return load_sources(sources, base), sources, base
    except ToolError as e:
        raise _fail(str(e)) from None


def _relative_to(sources: ToolSources, base: Path, lock_dir: Path) -> ToolSources:
    """Store spec/file paths relative to the lock file so the lock works from any checkout."""
    from tether.tools import OpenAPISource, ToolSources

    def rel(p: str) -> str:
        path = Path(p) if Path(p).is_absolute() else base / p
        return os.path.relpath(path.resolve(), lock_dir)

    return ToolSources(
        modules=[rel(m) if m.endswith(".py") else m for m in sources.modules],
        openapi=[OpenAPISource(o.spec if o.is_url else rel(o.spec), o.base_url)
                 for o in sources.openapi],
        mcp=[rel(m) for m in sources.mcp],
    )


def _check_command(program: str, path: str | None) -> None:
    """Refuse a server whose program cannot be found now: it was written to the config and only
    failed at the next `tools lock|check`, as a server that "cannot be reached"."""
    import shutil

    if os.sep in program or (os.altsep and os.altsep in program):
        if not Path(program).exists():
            raise _fail(f"server command {program!r} (after `--`) does not exist; give the path "
                        "of the MCP server's program")
    elif shutil.which(program, path=path) is None:
        raise _fail(f"server command {program!r} (after `--`) is not on PATH; install it, or "
                    "give its full path")


def register(app: typer.Typer) -> None:
    tools_app = typer.Typer(
        help="List tools, lock their schemas, check live sources for drift.",
        no_args_is_help=True,
    )

    @tools_app.command("list")
    def list_cmd(
        module: ModuleOpt = None,
        openapi: OpenAPIOpt = None,
        mcp: MCPOpt = None,
        lock: LockOpt = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print model-facing definitions as JSON.")
        ] = False,
    ) -> None:
        """List tools with their metadata."""
        import orjson
        from rich.table import Table

        registry, _, _ = _resolve(module, openapi, _lock_path(lock), need_lock=False, mcp=mcp)
        tools = registry.list(all_versions=True)
        if as_json:
            payload = [{**t.definition(), "version": t.version, "side_effect": t.side_effect,
                        "idempotent": t.idempotent, "hash": t.schema_hash} for t in tools]
            typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
            return
        table = Table(title=f"{len(tools)} tools")
        for col in ("name", "version", "side effect", "idempotent", "timeout", "source",
                    "description"):
            table.add_column(col)
        from rich.markup import escape

        from tether.cli._safe import SafeConsole, safe_text

        for t in tools:  # names and descriptions an MCP server or a spec wrote: text, one line
            first_line = t.description.splitlines()[0] if t.description else ""
            cells = (t.name, t.version, t.side_effect, "yes" if t.idempotent else "no",
                     f"{t.timeout:g}s" if t.timeout else "-", _source_text(t.source),
                     first_line)
            table.add_row(*(escape(safe_text(c, one_line=True)) for c in cells))
        SafeConsole(width=200).print(table)

    @tools_app.command("lock")
    def lock_cmd(
        module: ModuleOpt = None,
        openapi: OpenAPIOpt = None,
        mcp: MCPOpt = None,
        lock: LockOpt = None,
    ) -> None:
        """Write every tool's schema and hash to the lock file (with the sources used)."""
        from tether.tools import write_lock

        lock = _lock_path(lock)
        registry, sources, base = _resolve(module, openapi, lock, need_lock=False, mcp=mcp)
        lock_dir = lock.resolve().parent
        write_lock(registry, lock, _relative_to(sources, base, lock_dir))
        typer.echo(f"locked {len(registry.list(all_versions=True))} tools in {lock}")

    @tools_app.command("check")
    def check_cmd(
        module: ModuleOpt = None,
        openapi: OpenAPIOpt = None,
        mcp: MCPOpt = None,
        lock: LockOpt = None,
    ) -> None:
        """Compare live tools with the lock file; exit 1 and list every drift if they differ."""
        from tether.tools import ToolError, check_lock

        lock = _lock_path(lock)
        registry, _, _ = _resolve(module, openapi, lock, need_lock=True, mcp=mcp)
        try:
            drifts = check_lock(registry, lock)
        except ToolError as e:
            raise _fail(str(e)) from None
        if not drifts:
            typer.echo(f"ok: {len(registry.list(all_versions=True))} tools match {lock}")
            return
        typer.echo(f"drift: {len(drifts)} difference(s) between live tools and {lock}")
        from tether.cli._safe import safe_text

        for d in drifts:  # a live tool's name or schema is the MCP server's text: one line
            typer.echo(f"  {safe_text(str(d), one_line=True)}")
        typer.echo(
            "If the change is intended, bump the tool's version and run `tether tools lock`."
        )
        raise typer.Exit(1)

    @tools_app.command(
        "add-mcp", context_settings={"allow_extra_args": True})
    def add_mcp_cmd(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The server's name (letters, digits, _ -).")],
        url: Annotated[
            str | None, typer.Option("--url", help="Streamable HTTP endpoint instead of a command.")
        ] = None,
        config: Annotated[
            Path, typer.Option("--config", "-c", help="The YAML file to write.", dir_okay=False)
        ] = Path(_MCP_CONFIG),
        tag: Annotated[
            list[str] | None, typer.Option("--tag", help="Tag every tool of it. Repeatable.")
        ] = None,
        only: Annotated[
            list[str] | None,
            typer.Option("--tool", help="Take only tools matching this glob. Repeatable."),
        ] = None,
        prefix: Annotated[
            str, typer.Option("--prefix", help="Prepend to its tool names (avoid clashes).")
        ] = "",
        env: Annotated[
            list[str] | None,
            typer.Option("--env", help="KEY=VALUE for the server's process. Repeatable."),
        ] = None,
        replace: Annotated[
            bool, typer.Option("--replace", help="Overwrite a server of the same name.")
        ] = False,
        trust_annotations: Annotated[
            bool, typer.Option("--trust-annotations", help="Take the server's hints "
                               "(readOnlyHint, idempotentHint...) as its tools' side effects: "
                               "only for a server you trust.")
        ] = False,
    ) -> None:
        """Add an MCP server to the config: `tether tools add-mcp NAME -- CMD ARGS...` (stdio)
        or `tether tools add-mcp NAME --url http://host:port/mcp` (streamable HTTP)."""
        from tether.tools import ToolError
        from tether.tools.mcp import MCPServerConfig, add_mcp_server

        command = list(ctx.args)
        if bool(command) == bool(url):
            raise _fail("give the server's command after `--` (tether tools add-mcp NAME -- "
                        "CMD ARGS...) or --url http://host:port/mcp, not both")
        pairs = [e.partition("=") for e in env or []]
        if any(not k or not sep for k, sep, _ in pairs):
            raise _fail("--env takes KEY=VALUE")
        try:
            server = MCPServerConfig(
                name=name, command=tuple(command), url=url, tags=tuple(tag or ()),
                tools=tuple(only or ()), prefix=prefix, env={k: v for k, _, v in pairs},
                trust_annotations=trust_annotations)
            if command:
                _check_command(command[0], server.env.get("PATH"))
            add_mcp_server(config, server, replace=replace)
        except ToolError as e:
            raise _fail(str(e)) from None
        where = url or " ".join(command)
        typer.echo(f"added MCP server {name!r} ({where}) to {config}")

    app.add_typer(tools_app, name="tools")
