"""How an MCP server is reached and which of its tools Tether takes: in code or in a YAML file.

A server is a command speaking MCP on stdin/stdout (`stdio`) or a URL speaking streamable HTTP.
The YAML file (written by `tether tools add-mcp NAME -- CMD ...`) maps names to servers:

    servers:
      time:
        command: [mcp-server-time, --local-timezone, UTC]
        tags: [clock]
      docs:
        url: http://127.0.0.1:8000/mcp
        tools: [search_*]          # only these (globs); default: every tool
        side_effects: {search_docs: read}   # the operator's word beats the server's hints

Every mistake in the file is reported with the file, the server and the key, and what to write.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tether.tools._base import SIDE_EFFECTS
from tether.tools._errors import ToolDefinitionError

DEFAULT_MCP_CONFIG = "mcp.yaml"
_KEYS = frozenset({"command", "url", "env", "cwd", "headers", "tags", "tools", "exclude",
                   "prefix", "timeout", "side_effects", "trust_annotations", "tool_tags",
                   "protocol", "max_output_chars", "max_message_bytes"})
_PROTOCOLS = ("auto", "legacy")
#: what a server may ask of the client while a call runs, passed to the SDK's `Client`
CALLBACKS = frozenset({"elicitation_callback", "sampling_callback", "list_roots_callback",
                       "logging_callback", "message_handler"})


class MCPConfigError(ToolDefinitionError):
    """An MCP server configuration is wrong (the message says where and what to write)."""

    kind = "mcp_config_error"


@dataclass(frozen=True)
class MCPServerConfig:
    """One MCP server as a tool source.

    A server's ``readOnlyHint``/``destructiveHint``/``idempotentHint``/``openWorldHint`` are
    hints from whoever wrote the server, and the spec says to treat them as untrusted unless
    the server is: by default every tool is ``destructive``, not idempotent and open-world
    unless ``side_effects`` says otherwise. ``trust_annotations=True`` takes the hints of a
    server you trust (your own): a lying "read-only" would otherwise pass a read-only policy,
    and a lying "idempotent" be sent again after a crash.
    """

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: tags every tool of this server carries (select by tag before a model sees them)
    tags: tuple[str, ...] = ()
    #: extra tags per tool name
    tool_tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: globs of tool names to take (empty: all) and to leave out
    tools: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: prepended to each tool's name in the registry (two servers may name a tool alike)
    prefix: str = ""
    #: seconds one call may take
    timeout: float = 60.0
    #: side effect per tool name, over the server's annotations
    side_effects: dict[str, str] = field(default_factory=dict)
    trust_annotations: bool = False
    #: longest result kept (the journal stores every result; a server must not flood it)
    max_output_chars: int = 200_000
    #: longest line a stdio server may write (one JSON-RPC message): a longer one ends the
    #: session and fails the calls in flight, instead of being read into memory whole
    max_message_bytes: int = 32 << 20
    #: ``auto`` (discover the server's protocol, fall back to the initialize handshake),
    #: ``legacy`` (the handshake only) or a protocol version to adopt directly
    protocol: str = "auto"
    #: code only, never written to a file: an ``httpx2.Auth`` for an HTTP server (e.g. the SDK's
    #: ``mcp.client.auth.OAuthClientProvider``) and the SDK client callbacks (``CALLBACKS``)
    auth: Any = field(default=None, compare=False, repr=False)
    callbacks: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"MCP server {self.name!r}"
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise MCPConfigError(f"{where}: a server name uses letters, digits, '_' and '-'")
        if bool(self.command) == bool(self.url):
            raise MCPConfigError(
                f"{where}: give exactly one of `command` (a program speaking MCP on stdio) "
                "and `url` (a streamable HTTP endpoint such as http://127.0.0.1:8000/mcp)"
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise MCPConfigError(f"{where}: url {self.url!r} must start with http:// or https://")
        if not self.max_output_chars > 0:
            raise MCPConfigError(f"{where}: max_output_chars must be > 0")
        if not self.max_message_bytes > 0:
            raise MCPConfigError(f"{where}: max_message_bytes must be > 0")
        if not self.timeout > 0:
            raise MCPConfigError(f"{where}: timeout must be > 0 seconds, not {self.timeout!r}")
        if self.protocol not in _PROTOCOLS and not self.protocol[:4].isdigit():
            raise MCPConfigError(
                f"{where}: protocol {self.protocol!r}: use auto, legacy or a protocol version "
                "such as 2026-07-28")
        unknown = sorted(set(self.callbacks) - CALLBACKS)
        if unknown:
            raise MCPConfigError(f"{where}: unknown callback(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(CALLBACKS))}")
        if self.auth is not None and self.url is None:
            raise MCPConfigError(f"{where}: auth applies to an HTTP server (url), not to stdio")
        for tool, effect in self.side_effects.items():
            if effect not in SIDE_EFFECTS:
                raise MCPConfigError(
                    f"{where}: side_effects.{tool} is {effect!r}; use one of "
                    f"{', '.join(SIDE_EFFECTS)}"
                )

    @classmethod
    def stdio(cls, name: str, command: str, *args: str, **options: Any) -> MCPServerConfig:
        """A server started as ``command args...`` and spoken to over its stdin/stdout."""
        return cls(name=name, command=(command, *args), **options)

    @classmethod
    def http(cls, name: str, url: str, **options: Any) -> MCPServerConfig:
        """A server reached over streamable HTTP at ``url``."""
        return cls(name=name, url=url, **options)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def label(self) -> str:
        """How error messages name the server: its name and where it is."""
        return f"MCP server {self.name!r} ({self.url or ' '.join(self.command)})"

    def wants(self, tool: str) -> bool:
        """Whether the configuration takes the server's tool ``tool``."""
        if any(fnmatch.fnmatchcase(tool, g) for g in self.exclude):
            return False
        return not self.tools or any(fnmatch.fnmatchcase(tool, g) for g in self.tools)

    def to_json(self) -> dict[str, Any]:
        """The YAML/JSON form (defaults left out, so a file stays short)."""
        out: dict[str, Any] = (
            {"command": list(self.command)} if self.command else {"url": self.url}
        )
        defaults = MCPServerConfig(name="x", url="http://x")
        for key in sorted(_KEYS - {"command", "url"}):
            value = getattr(self, key)
            if value != getattr(defaults, key):
                if isinstance(value, tuple):
                    value = list(value)
                elif key == "tool_tags":
                    value = {k: list(v) for k, v in value.items()}
                out[key] = value
        return out

    @classmethod
    def from_json(cls, name: str, data: Any, *, where: str = "") -> MCPServerConfig:
        """Read one server's mapping; ``where`` names the file in error messages."""
        at = f"{where}: " if where else ""
        if not isinstance(data, dict):
            raise MCPConfigError(f"{at}server {name!r} must be a mapping with `command` or `url`")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise MCPConfigError(
                f"{at}server {name!r}: unknown key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(_KEYS))}"
            )
        command = data.get("command") or ()
        if isinstance(command, str):
            command = (command,)
        try:
            return cls(
                name=str(name),
                command=tuple(str(c) for c in command),
                url=data.get("url"),
                env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
                cwd=data.get("cwd"),
                headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
                tags=tuple(str(t) for t in data.get("tags") or ()),
                tool_tags={str(k): tuple(str(t) for t in v)
                           for k, v in (data.get("tool_tags") or {}).items()},
                tools=tuple(str(t) for t in data.get("tools") or ()),
                exclude=tuple(str(t) for t in data.get("exclude") or ()),
                prefix=str(data.get("prefix") or ""),
                timeout=float(data.get("timeout", 60.0)),
                side_effects={str(k): str(v) for k, v in (data.get("side_effects") or {}).items()},
                trust_annotations=bool(data.get("trust_annotations", False)),
                protocol=str(data.get("protocol", "auto")),
                max_output_chars=int(data.get("max_output_chars", 200_000)),
                max_message_bytes=int(data.get("max_message_bytes", 32 << 20)),
            )
        except MCPConfigError as e:
            raise MCPConfigError(f"{at}{e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise MCPConfigError(f"{at}server {name!r}: {e}") from None


def read_mcp_config(path: str | Path) -> list[MCPServerConfig]:
    """The servers of a YAML file (``servers: {name: {...}}``); a relative ``cwd`` is relative
    to the file, so the file works from any working directory."""
    p = Path(path)
    if not p.exists():
        raise MCPConfigError(
            f"MCP config {str(p)!r} not found; create it with `tether tools add-mcp NAME -- CMD`"
        )
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise MCPConfigError(f"MCP config {str(p)!r} is not valid YAML: {e}") from None
    servers = doc.get("servers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        raise MCPConfigError(f"MCP config {str(p)!r} needs a top-level `servers:` mapping")
    out = []
    for name, data in servers.items():
        cfg = MCPServerConfig.from_json(str(name), data, where=str(p))
        if cfg.cwd is not None and not Path(cfg.cwd).is_absolute():
            cfg = replace(cfg, cwd=str((p.parent / cfg.cwd).resolve()))
        out.append(cfg)
    return out


def add_mcp_server(path: str | Path, config: MCPServerConfig, *, replace: bool = False) -> None:
    """Add (or with ``replace``, overwrite) one server in the YAML file, keeping the others."""
    p = Path(path)
    doc: dict[str, Any] = {}
    if p.exists():
        loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise MCPConfigError(f"MCP config {str(p)!r} is not a mapping; fix or remove it")
        doc = loaded
    servers = doc.setdefault("servers", {})
    if not isinstance(servers, dict):
        raise MCPConfigError(f"MCP config {str(p)!r}: `servers` must be a mapping")
    if config.name in servers and not replace:
        raise MCPConfigError(
            f"MCP config {str(p)!r} already has a server {config.name!r}; "
            "pass --replace to overwrite it"
        )
    servers[config.name] = config.to_json()
    p.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

