"""Logs of the long-running commands (`tether worker`, `tether serve`): one line per record on
stderr, as text a person reads or as JSON a log pipeline reads.

Why: these commands run for days under a supervisor, and what they log is how an operator
learns that the store refused claims, that a lease was lost, that a run's agent cannot be
loaded. Without a handler, Python printed only the bare message: no time, no level, no source,
and nothing a log aggregator (Loki, CloudWatch, Elastic) could parse. `--log-format json`
writes one object per line — `ts`, `level`, `logger`, `message`, `exc` when there is a
traceback, and the fields an agent's `ctx.log(..., **fields)` gave.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Annotated, Any

import typer

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LogLevel = Annotated[str, typer.Option(
    "--log-level", envvar="TETHER_LOG_LEVEL", help="debug, info (adds what agents log with "
    "ctx.log), warning or error.")]
LogFormat = Annotated[str, typer.Option(
    "--log-format", envvar="TETHER_LOG_FORMAT", help="text (a line a person reads) or json "
    "(one object per line, for a log pipeline).")]


def _ts(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
        f".{int(created % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-12-07T06:33:18.120Z WARNING tether.worker: message` (UTC, as the journal's
    times are shown). A message and its fields stay on their line, control characters shown
    as escapes (`_safe`): what an agent logs with `ctx.log` must not forge another record or
    drive the terminal reading the log."""

    def format(self, record: logging.LogRecord) -> str:
        from ._safe import safe_text

        line = f"{_ts(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = getattr(record, "tether_fields", None)
        if fields:
            line += " " + json.dumps(fields, default=str, ensure_ascii=False)
        line = safe_text(line, one_line=True)
        if record.exc_info:
            line += "\n" + safe_text(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a string field)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _ts(record.created), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "tether_fields", None)
        if isinstance(fields, dict) and fields:
            out["fields"] = fields
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """One stderr handler on the root logger, replacing any earlier one of ours. A bad level
    or format is a usage error before anything starts."""
    from ._common import fail

    if level.lower() not in LEVELS:
        fail(f"--log-level {level!r}: use one of {', '.join(LEVELS)}", 2)
    if fmt.lower() not in FORMATS:
        fail(f"--log-format {fmt!r}: use one of {', '.join(FORMATS)}", 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt.lower() == "json" else TextFormatter())
    handler.set_name("tether-cli")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "tether-cli"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
