"""Untrusted text made safe for the operator's terminal: the one filter every CLI renderer
uses (`safe_text`), and the console that applies it to everything rich prints (`SafeConsole`).

Why: what the CLI prints came from models, tools (MCP servers), agent code and run inputs. A
terminal obeys control characters: ESC/CSI clears the screen or moves the cursor, OSC sets the
window title, writes the clipboard (OSC 52) or hides a link (OSC 8), C1 `\\x9b` is a CSI on
its own, a bare `\\r` or `\\b` overwrites what was printed (`ok` then `\\r denied by policy`),
a bidi override (U+202E) shows text reversed, and a newline in a one-line record forges
another record (`tether runs`, progress lines, log lines). rich drops only BEL, BS, VT, FF and
CR, leaving ESC, C1 and bidi controls (and a title sequence without its BEL, which swallows the
rest of the output). Each such character is shown as a visible escape (`\\x1b`, `\\u202e`),
so the operator sees what the text really holds; ordinary Unicode is kept as it is. JSON
output (`--json`) is JSON, escaped by its encoder, and never passes through here.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

#: C0 controls but TAB and LF, DEL, C1 controls, bidi embeddings/overrides/isolates and marks,
#: line and paragraph separators (a terminal may break the line at them)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069]")
#: the same, and line breaks and tabs too: for a field that must stay on its line
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                              "\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character a terminal would obey shown as an escape.

    `one_line`: a field of a one-line record (a progress or log line, a listing's cell):
    line breaks and tabs are shown as `\\n`, `\\r`, `\\t` too. Otherwise (a traceback, a
    multi-line result) line breaks stay and a Windows `\\r\\n` is an ordinary line break; a
    bare `\\r` is still shown, since it overwrites the line it ends."""
    if one_line:
        return _UNSAFE_ONE_LINE.sub(_visible, text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_visible, text)


class SafeConsole(Console):
    """A rich console that shows control characters in any string it renders as escapes.

    Every string rich draws — `print` arguments, table cells, titles and captions, tree labels
    — becomes text through `render_str`, so filtering there covers every command at once,
    including the ones that format untrusted text into markup. The filter runs before markup
    is parsed: the escapes it writes end in a letter or digit, so they never turn a `[` into
    an escaped bracket or the reverse. rich's own styling is emitted later, as segments'
    styles, and is not touched.

    Emoji codes are off: a run's data such as `team :thumbs_up:` or `shop.py:new:x` is shown as
    it is, not as pictures (rich's default turned `:new:` in an error message into one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(safe_text(text), **kwargs)
