"""A guarded run whose tools handle PII and secrets, for the leak tests (test_leaks_*.py): every
output channel is checked for the values below. Not a test module; runs refer to the agent by
module path, so workers and the CLI can load it.

The tools return and raise what real tools do: a CRM row with an e-mail, a phone, a card and an
IBAN; a config reader that returns an API key from the environment; a payment call that fails
with the bearer token in its exception message; a login tool the policy grants a password.
"""

from __future__ import annotations

import os
from typing import Any

from tether.agents import react as builtin_react
from tether.guards import GuardConfig, Guards, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.tools import ToolRegistry, tool

EMAIL = "jane.doe@corp.example"
PHONE = "+1 415 555 0132"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
API_KEY = "sk-proj-Q7fXz2LmN9pRtV4wYb8KcD3eHj6Uo1SaGi5Ml0Nq"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlLXNlY3JldC14eXo"
ENV_SECRET = "ghp_R8kTq2VnX5bLm9ZcW3yH7dJf4Ps6Ga1Ue0Io"
PASSWORD = "hunter2-Corr3ct-Horse"
ENV_NAME = "TETHER_LEAK_TEST_TOKEN"

#: every value that must not reach a place the policy did not grant it to
SECRETS = [EMAIL, PHONE, CARD, IBAN, API_KEY, BEARER.split()[1], ENV_SECRET, PASSWORD]

POLICY = """
name: leaks
rules:
  - id: crm
    tools: crm_lookup
    effect: allow
    args: {customer: {not_in: [blocked@corp.example]}}
    pii: [email]
  - {id: config, tools: read_config, effect: allow}
  - {id: pay, tools: charge, effect: allow}
  - {id: login, tools: login, effect: allow, pii: [secret]}
"""

VAULT_KEY = bytes(range(32))
registry = ToolRegistry()


@registry.register
@tool(side_effect="read")
def crm_lookup(customer: str) -> dict[str, str]:
    """A customer's contact record."""
    return {"customer": customer, "email": EMAIL, "phone": PHONE, "card": CARD, "iban": IBAN,
            "api_key": API_KEY}


@registry.register
@tool(side_effect="read")
def read_config(name: str) -> str:
    """A deployment setting, read from the environment."""
    return f"{name}={os.environ.get(ENV_NAME, '')}"


@registry.register
@tool(side_effect="write")
def charge(customer: str, amount: float) -> str:
    """Charge a customer; the payment provider refuses with the request's headers quoted."""
    raise PermissionError(f"401 from payments: Authorization: {BEARER} rejected for {EMAIL}")


@registry.register
@tool(side_effect="write")
def login(user: str, password: str) -> str:
    """Log in to the billing portal (granted the password)."""
    return f"logged in as {user}"


def guards() -> Guards:
    cfg = GuardConfig(policy=loads_policy(POLICY, "leaks.yaml"), vault_key=VAULT_KEY)
    return Guards(cfg, tools=registry)


GUARDS = guards()


def say(text: str, *calls: Any) -> dict[str, Any]:
    return {"text": text, "tool_calls": [c.model_dump() for c in calls],
            "finish_reason": "tool_calls" if calls else "stop",
            "usage": {"input_tokens": 10, "output_tokens": 5}}


def script() -> ScriptedModel:
    """The model: looks the customer up, reads a setting, charges (fails), logs in with the
    password it was given as a placeholder, answers."""
    return ScriptedModel([
        say("I look up [EMAIL_1].", tool_call("crm_lookup", {"customer": "[EMAIL_1]"}, id="c1")),
        say("I read the payments token.", tool_call("read_config", {"name": "token"}, id="c2")),
        say("I charge the customer.", tool_call("charge", {"customer": "C-1", "amount": 5},
                                               id="c3")),
        say("I log in with [SECRET_1].", tool_call(
            "login", {"user": "ops", "password": "[SECRET_1]"}, id="c4")),
        say("Done."),
    ], name="openai:gpt-4o-mini")


MODEL: dict[str, ScriptedModel] = {"model": script()}


async def leaky(ctx: Any, goal: Any) -> Any:
    """The governed ReAct run (the goal holds the customer's address and the password to log
    in with: the model sees them as `[EMAIL_1]` and `[SECRET_1]`)."""
    return await builtin_react(ctx, goal, model=MODEL["model"], tools=registry, guards=GUARDS)


GOAL = f"Charge {EMAIL} 5 EUR. The portal password is password={PASSWORD}"


def found(text: str) -> list[str]:
    """The secrets (or a telling piece of each) that `text` holds."""
    return [s for s in SECRETS if s in text or s.replace(" ", "") in text]


def leaky_tether(db_path: str, **kw: Any) -> Any:
    """A Tether over `db_path` (extra keywords to it), by default with new guards for the
    leaky run (the charge always fails: shared guards would open its circuit breaker)."""
    from tether import Tether

    global GUARDS
    if "interceptors" not in kw:
        GUARDS = guards()
        kw["interceptors"] = GUARDS.interceptors()
    return Tether(db_path, **kw)


async def leaky_run(db_path: str, t: Any = None) -> tuple[Any, Any]:
    """The finished leaky run, on `t` or a fresh Tether over `db_path`: every tool ran (the
    charge failed, as a tool's error the model reads)."""
    os.environ[ENV_NAME] = ENV_SECRET
    MODEL["model"] = script()
    t = t if t is not None else leaky_tether(db_path)
    run = await t.run("tests.observe.leaks_support:leaky", GOAL)
    assert run.status == "succeeded", run.error
    return t, run


def _fetch_token() -> str:
    raise RuntimeError(f"GET https://api.example/v1 with key {API_KEY} answered 403 "
                       f"for {EMAIL}")


async def crashing(ctx: Any, goal: Any) -> Any:
    """A run whose own step fails quoting an API key, and so fails itself: the message is in
    the step's and the run's failure."""
    await ctx.step("fetch_token", _fetch_token)


#: charging needs an approval, granted the customer's address: the approvers see it
APPROVING = Guards(GuardConfig(policy=loads_policy(
    "rules:\n  - {id: pay, tools: charge, effect: approve, pii: [email]}\n", "pay.yaml"),
    vault_key=VAULT_KEY), tools=registry)


async def paying(ctx: Any, goal: Any) -> Any:
    """Proposes to charge `[EMAIL_1]` (the goal's address): the run waits for an approval."""
    model = ScriptedModel([say("I charge [EMAIL_1].", tool_call(
        "charge", {"customer": "[EMAIL_1]", "amount": 5}, id="p1")), say("Charged.")])
    return await builtin_react(ctx, goal, model=model, tools=registry, guards=APPROVING)
