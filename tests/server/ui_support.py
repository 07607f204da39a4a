"""Browser-like users of the web UI for the tests: each holds its own cookie jar (a TestClient
on the same app, or any httpx client), logs in through the login form like a person, and sends
forms with the CSRF token its pages carry."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


class UiUser:
    """One browser: `login`, then `get`/`post` pages; `csrf` is the session's form token."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.csrf = ""

    @classmethod
    def of(cls, app: Any) -> UiUser:
        """A fresh cookie jar on `app` (whose lifespan another client already runs)."""
        return cls(TestClient(app))

    def login(self, key: str) -> Any:
        page = self.client.get("/ui/login")
        reply = self.client.post("/ui/login", data={"csrf": csrf_of(page.text), "key": key},
                                 follow_redirects=False)
        if reply.status_code == 303:
            self.csrf = csrf_of(self.client.get("/ui/runs").text)
        return reply

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = None,
             **kwargs: Any) -> Any:
        """POST a form; `csrf` overrides the session's token ("" sends none)."""
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form["csrf"] = token
        return self.client.post(path, data=form, follow_redirects=False, **kwargs)

    def submit(self, agent: str, text: str) -> str:
        """Submit a run from the runs page's form; its id (from the redirect)."""
        reply = self.post("/ui/runs", {"agent": agent, "input": text})
        assert reply.status_code == 303, reply.text
        return str(reply.headers["location"]).rsplit("/", 1)[1]


def _budget_guards() -> Any:
    from tether.guards import GuardConfig, Guards, loads_policy
    from tether.guards.budget import BudgetLimits

    from . import api_support as S

    return Guards(GuardConfig(policy=loads_policy(S.POLICY, "payments.yaml"),
                              approvers=S.GUARDS.config.approvers,
                              tenant_limits={"acme": BudgetLimits(steps=200, tokens_in=20_000,
                                                                  tool_calls=50)}),
                  tools=S.TOOLS)


#: the payments guards of api_support with daily limits for tenant acme (the usage page's
#: budgets)
BUDGET_GUARDS = _budget_guards()


async def sandboxed(ctx: Any, _: Any = None) -> int:
    """One sandboxed python call that prints (HTML, to see it escaped), complains on stderr and
    writes a workspace file: what the run page's sandbox outputs show."""
    done = await ctx.exec("import sys; print('<b>42</b>'); print('careful', file=sys.stderr); "
                          "open('/workspace/out.txt', 'w').write('x')",
                          language="python", backend="bwrap")
    return int(done["exit_code"])


def user(api: Any, label: str) -> UiUser:
    """A browser session of the app under test, logged in with key `label` of `api`."""
    u = UiUser.of(api.app)
    assert u.login(api.keys[label]).status_code == 303
    return u
