"""An in-doubt call's durable start records which call it was, the PII still masked: the
operator deciding whether it acted reads its arguments as the model proposed them."""

from __future__ import annotations

from tether.observe.timeline import describe

from .e2e_support import journal
from .test_e2e_pii import MAIL, SECRETS, guards_for, mail_run


async def test_the_start_of_a_call_not_safe_to_repeat_records_its_masked_arguments(db_path):
    guards = guards_for("rules:\n  - {id: mail, tools: send_email, effect: allow, "
                        "pii: [email, card]}\n")
    t, _, run = await mail_run(db_path, guards, MAIL)
    started = [e for e in journal(t, run.id)
               if e.kind == "step_started" and e.name == "tool:send_email"]
    assert len(started) == 1
    # the tool got the real address; the journal has the placeholders the model proposed
    assert started[0].data["meta"]["arguments"] == MAIL
    text = describe(started[0])
    assert '"to": "[EMAIL_1]"' in text and not any(s in text for s in SECRETS)
    t.close()


async def test_a_call_safe_to_repeat_records_none_and_a_big_one_only_its_digest(db_path):
    """Only a call that can be left in doubt records its arguments, and never whole past
    16 KiB: a 10 MB file body is not copied into every start (found in review: the gateway's
    proposal went into the start of every call, uncapped)."""
    import os

    from tether import Tether
    from tether.guards import GuardConfig, Guards, loads_policy
    from tether.runtime.effects.tool import ARGUMENTS_JOURNAL_MAX

    from . import agents_guarded as A
    from .e2e_support import open_tether, run_proposals

    body = "x" * (4 * ARGUMENTS_JOURNAL_MAX)
    guards = Guards(GuardConfig(policy=loads_policy(
        "rules:\n  - {id: all, tools: [search, write_file], effect: allow}\n", "p.yaml"),
        vault_key=os.urandom(32)), tools=A.registry)
    run = await run_proposals(db_path, guards, [["search", {"q": body}],
                                                ["write_file", {"path": "a", "content": body}]])
    t: Tether = open_tether(db_path, guards)
    try:
        started = {e.name: e.data["meta"] for e in t.events(run.id) if e.kind == "step_started"
                   and e.name in ("tool:search", "tool:write_file")}
    finally:
        t.close()
    assert "arguments" not in started["tool:search"]  # a read: idempotent, re-run
    recorded = started["tool:write_file"]["arguments"]
    assert recorded["bytes"] > ARGUMENTS_JOURNAL_MAX and body not in str(recorded)
