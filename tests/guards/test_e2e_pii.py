"""PII on the real runtime: the model sees placeholders; a tool gets the real values of the kinds
its policy rule grants (`pii: [...]`) and placeholders otherwise; the vault is sealed."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tether.guards import GuardConfig, Guards, PolicyLoadError, Vault, loads_policy
from tether.guards.pii import PiiPattern
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import VAULT_KEY, journal, open_tether, replay_only, say, sent_to_model

TASK = ("Tell jane.doe@corp.example (phone +1 415 555 0132) that card 4111 1111 1111 1111 "
        "was refunded; her SSN 123-45-6789 and IBAN DE89 3704 0044 0532 0130 00 are on file.")
SECRETS = ["jane.doe@corp.example", "4111 1111 1111 1111", "123-45-6789", "+1 415 555 0132",
           "DE89 3704 0044 0532 0130 00"]
MAIL = {"to": "[EMAIL_1]", "body": "refund to [CARD_1] ok"}


def guards_for(policy: str, **kw: Any) -> Guards:
    cfg = GuardConfig(policy=loads_policy(policy, "pii.yaml"), vault_key=VAULT_KEY, **kw)
    return Guards(cfg, tools=A.registry)


async def mail_run(db_path: str, guards: Guards, args: dict[str, Any],
                   task: str = TASK) -> tuple[Any, ScriptedModel, Any]:
    model = ScriptedModel([say("", tool_call("send_email", args)), "sent"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": task})
    assert run.status == "succeeded", run.error
    assert await replay_only(t, guards, run.id, A.react) == run.result
    return t, model, run


# ------------------------------------------------------------------------------- granted
async def test_model_never_sees_pii_but_a_granted_tool_gets_real_values(db_path):
    guards = guards_for("""
rules:
  - id: email-internal
    tools: send_email
    effect: allow
    args: {to: {regex: '[^@]+@corp\\.example'}}
    pii: [email, card]
""")
    t, model, run = await mail_run(db_path, guards, MAIL)
    sent = sent_to_model(model)
    for s in SECRETS:
        assert s not in sent
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent
    assert A.EXECUTED == [("send_email", {"to": "jane.doe@corp.example",
                                          "body": "refund to 4111 1111 1111 1111 ok"})]
    sealed = [e for e in journal(t, run.id) if e.kind == "annotation"
              and e.name == "guard:vault"]
    blob = base64.b64decode(sealed[0].data["vault"])
    assert b"jane.doe" not in blob
    assert dict(Vault.open(blob, VAULT_KEY, run.id).entries())["[EMAIL_1]"] == \
        "jane.doe@corp.example"
    t.close()


# ---------------------------------------------------------------------------- not granted
async def test_a_tool_without_a_grant_gets_the_placeholders(db_path):
    guards = guards_for("rules:\n  - {id: mail, tools: send_email, effect: allow}\n")
    t, model, _ = await mail_run(db_path, guards, MAIL)
    assert A.EXECUTED == [("send_email", MAIL)]  # nothing filled in: no rule grants a kind
    assert all(s not in sent_to_model(model) for s in SECRETS)
    t.close()


async def test_a_grant_is_per_kind(db_path):
    guards = guards_for("rules:\n  - {id: mail, tools: send_email, effect: allow, "
                        "pii: [email]}\n")
    t, _, _ = await mail_run(db_path, guards, MAIL)
    assert A.EXECUTED == [("send_email", {"to": "jane.doe@corp.example",
                                          "body": "refund to [CARD_1] ok"})]
    t.close()


async def test_a_grant_to_one_tool_is_not_a_grant_to_another(db_path):
    guards = guards_for("""
rules:
  - {id: mail, tools: send_email, effect: allow}
  - {id: crm, tools: crm_lookup, effect: allow, pii: [email]}
""")
    t, _, _ = await mail_run(db_path, guards, MAIL)
    assert A.EXECUTED == [("send_email", MAIL)]
    t.close()


async def test_the_grant_is_judged_on_what_the_tool_would_receive(db_path):
    """The granting rule only matches the real internal address; for an external one the open
    rule (which grants nothing) decides, so the tool gets the placeholder."""
    policy = """
rules:
  - id: email-internal
    tools: send_email
    effect: allow
    args: {to: {regex: '[^@]+@corp\\.example$'}}
    pii: [email]
  - {id: email-any, tools: send_email, effect: allow}
"""
    t, _, _ = await mail_run(db_path, guards_for(policy), {"to": "[EMAIL_1]", "body": "hi"})
    assert A.EXECUTED == [("send_email", {"to": "jane.doe@corp.example", "body": "hi"})]
    t.close()
    outside = TASK.replace("jane.doe@corp.example", "jane@elsewhere.example")
    t, _, _ = await mail_run(db_path + ".2", guards_for(policy), {"to": "[EMAIL_1]",
                                                                  "body": "hi"}, outside)
    assert A.EXECUTED == [("send_email", {"to": "[EMAIL_1]", "body": "hi"})]
    t.close()


async def test_every_policy_of_a_set_must_grant(db_path):
    """A tenant policy that allows the tool without a grant keeps the agent's grant from
    applying: both policies must agree, the most restrictive wins."""
    agent = "rules:\n  - {id: mail, tools: send_email, effect: allow, pii: [email, card]}\n"
    tenant = "name: acme\nrules:\n  - {id: mail, tools: send_email, effect: allow, pii: [card]}\n"
    cfg = GuardConfig(policy=loads_policy(agent, "agent.yaml"), vault_key=VAULT_KEY,
                      tenant_policies={"acme": loads_policy(tenant, "acme.yaml")})
    guards = Guards(cfg, tools=A.registry)
    model = ScriptedModel([say("", tool_call("send_email", MAIL)), "sent"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": TASK}, tenant="acme")
    assert run.status == "succeeded", run.error
    assert A.EXECUTED == [("send_email", {"to": "[EMAIL_1]",
                                          "body": "refund to 4111 1111 1111 1111 ok"})]
    t.close()


async def test_a_call_denied_on_the_real_value_is_denied(db_path):
    """The deny rule matches the real address: the call is refused on it (not sent to the
    placeholder instead), and the model is told so without seeing the address."""
    guards = guards_for("""
rules:
  - {id: mail, tools: send_email, effect: allow, pii: [email]}
  - id: no-outside
    tools: send_email
    effect: deny
    args: {to: {regex: '.*@elsewhere\\.example'}}
""")
    outside = TASK.replace("jane.doe@corp.example", "jane@elsewhere.example")
    t, model, run = await mail_run(db_path, guards, {"to": "[EMAIL_1]", "body": "x"}, outside)
    assert A.EXECUTED == []
    observation = run.result["observations"][0]
    assert observation["error"]["type"] == "policy_denied"
    assert "no-outside" in observation["error"]["message"]
    assert "jane@elsewhere.example" not in sent_to_model(model)
    t.close()


# ------------------------------------------------------------------------- configuration
def test_a_grant_of_an_unknown_kind_is_refused_with_its_rule_and_line():
    policy = loads_policy("rules:\n  - {id: mail, tools: send_email, effect: allow, "
                          "pii: [emial]}\n", "typo.yaml")
    with pytest.raises(PolicyLoadError) as err:
        GuardConfig(policy=policy)
    assert err.value.line == 2 and "emial" in str(err.value) and "typo.yaml" in str(err.value)
    # a custom kind is known once its pattern is configured
    custom = loads_policy("rules:\n  - {id: hr, tools: hr, effect: allow, "
                          "pii: [employee_id]}\n")
    GuardConfig(policy=custom, pii_patterns=[PiiPattern.custom("EMPLOYEE_ID", r"EMP-\d{6}")])
    with pytest.raises(PolicyLoadError):
        GuardConfig(policy=custom)
