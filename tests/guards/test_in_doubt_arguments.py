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
