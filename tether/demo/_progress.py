"""The demo's live output: each ReAct event printed as it happens, code-tool calls as code and
their JSON results as a status line plus the program's output, so a viewer follows the agent
without reading raw observations."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from tether.agents import ReActEvent


class Progress:
    """Prints ReAct events as they happen (code-tool calls as code, their results as output)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self._replayed_step = 0

    def _t(self) -> str:
        return f"[dim]{time.monotonic() - self.started:6.1f}s[/dim]"

    def __call__(self, event: ReActEvent) -> None:
        t = self._t()
        c = self.console
        if event.replay:  # a resumed run rebuilding itself from its journal: nothing executes
            if event.step != self._replayed_step:
                self._replayed_step = event.step
                c.print(f"{t} [dim]step {event.step} replayed from the journal (not re-run)"
                        "[/dim]")
            return
        if event.kind == "thought":
            c.print(f"{t} [bold]step {event.step}[/bold] [italic]{escape(event.text)}[/italic]")
        elif event.kind == "tool_call":
            args = event.arguments if isinstance(event.arguments, dict) else {}
            code = args.get("code", args.get("script"))
            if event.tool in ("python", "bash") and isinstance(code, str) and len(args) == 1:
                c.print(f"{t} [bold]step {event.step}[/bold] [cyan]→ {event.tool}:[/cyan]")
                for line in code.rstrip().splitlines()[:25]:
                    c.print(f"         [cyan]│ {escape(line)}[/cyan]")
                return
            shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
            c.print(f"{t} [bold]step {event.step}[/bold] [cyan]→ {event.tool}({escape(shown)})"
                    "[/cyan]")
        elif event.kind == "observation":
            style = "green" if event.ok else "red"
            lines = _exec_lines(event.text) if event.tool in ("python", "bash") else None
            if lines is None:
                c.print(f"{t}        [{style}]← {escape(_short(event.text, 150))}[/{style}]")
                return
            head, *rest = lines
            c.print(f"{t}        [{style}]← {escape(head)}[/{style}]")
            for line in rest:
                c.print(f"         [{style}]  {escape(line)}[/{style}]")
        elif event.kind == "answer":
            c.print(f"{t} [bold]step {event.step}[/bold] [magenta]final answer[/magenta]")

    def retry(self, figures: list[str]) -> None:
        why = ("has no figure" if figures == ["no figure"] else
               f"quotes {', '.join(figures)}, which no python call printed")
        self.console.print(f"{self._t()} [bold yellow]the answer {escape(why)}: trying again"
                           "[/bold yellow]")

    def staged(self, result: dict[str, Any]) -> None:
        files = ", ".join(sorted(result.get("manifest") or {}))
        self.console.print(
            f"{self._t()} [bold]setup[/bold]  [cyan]sandbox.exec[/cyan] staged {escape(files)} in "
            f"/workspace: `wc -l` → {escape((result.get('stdout') or '').strip())} "
            f"(exit {result.get('exit_code')})")


def _exec_lines(observation: str, max_lines: int = 14) -> list[str] | None:
    """A code tool's JSON result as a status line plus its output, or None if it is not one."""
    try:
        out = json.loads(observation)
    except ValueError:
        return None
    if not isinstance(out, dict) or "exit_code" not in out:
        return None
    files = out.get("files") or {}
    written = [*files.get("added", []), *files.get("modified", [])]
    status = f"exit {out.get('exit_code')}"
    if written:
        status += ", wrote " + ", ".join(written)
    if out.get("error"):
        status += f" ({out['error']})"
    text = (out.get("stdout") or "") + (out.get("stderr") or "")
    lines = [status, *text.rstrip().splitlines()]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"… ({len(lines) - max_lines + 1} more lines)"]
    return lines


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
