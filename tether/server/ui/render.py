"""Pages from Jinja2 templates (autoescaped), the headers every page carries, and the HTML face
of the API's errors: a page saying what went wrong and what to do — never a stack trace.

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
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api.errors import ApiError

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


_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_env.filters["when"] = _when
_env.filters["cost"] = _cost
_env.filters["json_clip"] = _json_clip


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
