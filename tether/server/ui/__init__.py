"""The web UI of `tether serve`: server-rendered pages (Jinja2) with htmx, under /ui.

`install(app)` adds it to the API's FastAPI app: its routes, its static files (htmx, a
stylesheet, the run page's event-stream script — committed, no build step) and the session
middleware that turns a browser's cookie into the API key it logged in with, and the one that
puts the UI's security headers on every response under /ui.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from .render import HERE, UiHeaders
from .routes import router
from .session import PREFIX, SessionAuth, Sessions

__all__ = ["Sessions", "install"]


def install(app: FastAPI) -> None:
    sessions = Sessions()
    app.state.tether_ui_sessions = sessions
    app.include_router(router)
    # a person who opens the server's address in a browser gets the UI, not a JSON 404
    app.add_api_route("/", lambda: RedirectResponse(PREFIX, status_code=307),
                      include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_middleware(SessionAuth, sessions=sessions)
    app.add_middleware(UiHeaders)
