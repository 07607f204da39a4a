"""What a server serves: its database, the agents callers may run, and how they are governed.

A caller names an agent from the catalogue, never an arbitrary import path: a reference is code
the server's workers import and execute, so only the deployment chooses it. Each entry's guards
(else the deployment's `guards`) are recorded with every run submitted through the API; the
request has no field that could drop or replace them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: far above any run input a person types, far below a DoS


@dataclass(frozen=True)
class AgentEntry:
    name: str
    ref: str  # module:function or file.py:function
    guards: str | None = None  # module:NAME; None: the deployment's guards, if any
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ref": self.ref, "guards": self.guards,
                "description": self.description}


@dataclass
class ServerConfig:
    """`agents`: name -> entry (a bare reference string is an entry without own guards).
    `guards`: the deployment's guards reference, for catalogue entries that declare none; it
    is also the embedded worker's default. `approvers`: a YAML file of approver public keys
    (merged with the guards' own `config.approvers`). `signing_keys`: a directory of
    `APPROVER.key` private keys the server may sign with on behalf of an authenticated
    approver who sends no signature of their own (the web UI's "click Approve"); without it,
    every decision must arrive signed. `tool_modules`: modules listed by `GET /v1/tools`."""

    db: str | os.PathLike[str] | None = None
    agents: dict[str, AgentEntry | str] = field(default_factory=dict)
    guards: str | None = None
    approvers: str | os.PathLike[str] | None = None
    signing_keys: str | os.PathLike[str] | None = None
    tool_modules: list[str] = field(default_factory=list)
    embedded_worker: bool = True
    worker_concurrency: int = 256
    worker_lease_ttl: float = 30.0  # seconds (`Worker(lease_ttl=)`)
    max_body: int = DEFAULT_MAX_BODY
    sse_poll: float = 0.2  # seconds between looks at the journal of a streamed run
    #: event streams one key may hold open at once (each polls the store): one viewer key
    #: with 1,500 streams made every other tenant's requests ~100x slower
    max_streams_per_key: int = 32
    #: seconds between re-reads of a streaming key: a revoked key's open streams end
    stream_key_recheck: float = 5.0

    def catalogue(self) -> dict[str, AgentEntry]:
        out: dict[str, AgentEntry] = {}
        for name, entry in self.agents.items():
            out[name] = entry if isinstance(entry, AgentEntry) else AgentEntry(name, entry)
        return out


def load_agents_file(path: str | os.PathLike[str]) -> dict[str, AgentEntry | str]:
    """A YAML mapping `name: module:function` or `name: {ref: ..., guards: ...,
    description: ...}`."""
    import yaml

    where = os.fspath(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read agents file {where!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"agents file {where!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"agents file {where!r} must map agent names to references")
    out: dict[str, AgentEntry | str] = {}
    for name, value in data.items():
        if isinstance(value, str):
            out[str(name)] = AgentEntry(str(name), value)
        elif isinstance(value, dict) and isinstance(value.get("ref"), str):
            unknown = set(value) - {"ref", "guards", "description"}
            if unknown:
                raise ValueError(f"agents file {where!r}, agent {name!r}: unknown field(s) "
                                 f"{sorted(unknown)}; expected ref, guards, description")
            out[str(name)] = AgentEntry(str(name), value["ref"], value.get("guards"),
                                        str(value.get("description") or ""))
        else:
            raise ValueError(f"agents file {where!r}, agent {name!r}: give 'module:function' "
                             "or a mapping with ref (and optionally guards, description)")
    return out
