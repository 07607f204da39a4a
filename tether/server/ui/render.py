"""Pages from Jinja2 templates (autoescaped), the headers every page carries (and, through
`UiHeaders`, every other response under /ui), and the HTML face of the API's errors: a page
saying what went wrong and what to do — never a stack trace.

`HtmlRoute` wraps each UI route: the API's dependencies raise the API's `ApiError` (401, 403,
404, ...) and the UI turns it into a page (401: back to the login page), so the UI enforces
exactly what the API does without a second set of rules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.errors import ApiError
from .session import PREFIX

log = logging.getLogger("tether.server.ui")
HERE = Path(__file__).parent
#: scripts and styles only from the server itself, no frames, no referrer leaving the site
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make the forms' Origin "null"
    "Cache-Control": "no-store",
}


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cost(value: float | None) -> str:
    return "" if value is None else f"${value:.6f}".rstrip("0").rstrip(".")


#: the most of a run's input or result a page shows (the whole value: the API's run)
PAGE_VALUE_MAX = 10_000


def _json_clip(value: Any) -> str:
    """A value as JSON for a page, cut at `PAGE_VALUE_MAX` characters (a plain string: the
    template escapes it). A page of a run with a 300 MB result was 314 MB of HTML."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= PAGE_VALUE_MAX:
        return text
    return (f"{text[:PAGE_VALUE_MAX]}… ({len(text) - PAGE_VALUE_MAX:,} more characters: "
            "GET /v1/runs/{id} has it whole)")


def _clip(text: Any) -> str:
    """Free text of a run (a span's name or error, a step's name, a guard's decision, sandbox
    output) cut at `PAGE_VALUE_MAX` characters, as `_json_clip` cuts values: a model names
    tools and steps, and a 300 KB name made the run page 300 KB — on every refresh."""
    text = "" if text is None else str(text)
    if len(text) <= PAGE_VALUE_MAX:
        return text
    return f"{text[:PAGE_VALUE_MAX]}… ({len(text) - PAGE_VALUE_MAX:,} more characters)"


def args_json(value: Any) -> str:
    """A pending action's arguments as ASCII JSON with sorted keys (what `tojson` showed):
    invisible and right-to-left characters a model put in them show as escapes, not as
    text that reads otherwise. Not cut here: the inbox decides what it does with a long one."""
    return json.dumps(value, default=str, sort_keys=True)


_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_env.filters["when"] = _when
_env.filters["cost"] = _cost
_env.filters["json_clip"] = _json_clip
_env.filters["clip"] = _clip
_env.filters["args_json"] = args_json
_env.globals["PAGE_VALUE_MAX"] = PAGE_VALUE_MAX


def page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=code,
                        headers=HEADERS)


def redirect(to: str, request: Request | None = None) -> Response:
    """303 to `to`; an htmx request is told to load it as a whole page instead."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=204, headers={**HEADERS, "HX-Redirect": to})
    return RedirectResponse(to, status_code=303, headers=HEADERS)


def error_page(request: Request, status: int, message: str, fix: str) -> Response:
    return page("error.html", status, status=status, message=message, fix=fix,
                who=getattr(request.state, "who", None), csrf="")


class UiHeaders:
    """`HEADERS` on every response under /ui that lacks them, not only the rendered pages: the
    static files, the event stream and the answers the router gives itself (404 for no such
    page, 405 for a GET of a form's target) were served without nosniff or framing rules. The
    static files stay cacheable (they hold no secret)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(f"{PREFIX}/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers and not (static and name == "Cache-Control"):
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


class HtmlRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                if exc.status == 401:
                    return redirect("/ui/login", request)
                return error_page(request, exc.status, exc.message, exc.fix)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return error_page(request, 422, f"{where}: {first.get('msg', 'invalid')}",
                                  "correct the form or the address and try again")
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, str(exc.detail),
                                  "go back to the runs page")
            except Exception as exc:  # logged for the operator, never shown
                log.error("internal error serving %s %s", request.method, request.url.path,
                          exc_info=exc)
                return error_page(request, 500, "the server failed to handle this request",
                                  "retry later; the server's log has the details for its "
                                  "operator")
        return run
