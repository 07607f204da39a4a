"""PII on the real runtime: the model sees placeholders, the tool gets real values, sealed."""

from __future__ import annotations

import base64

from tether.guards import Vault
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import VAULT_KEY, journal, make_guards, open_tether, replay_only, say


# ------------------------------------------------------------------------------- PII
async def test_model_never_sees_pii_but_the_tool_gets_real_values(db_path):
    guards = make_guards(None)
    model = ScriptedModel([
        say("", tool_call("send_email", {"to": "[EMAIL_1]", "body": "refund to [CARD_1] ok"})),
        "sent",
    ])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    task = ("Tell jane.doe@corp.example (phone +1 415 555 0132) that card 4111 1111 1111 1111 "
            "was refunded; her SSN 123-45-6789 and IBAN DE89 3704 0044 0532 0130 00 are on file.")
    run = await t.run(A.react, {"task": task})
    assert run.status == "succeeded", run.error
    secrets = ["jane.doe@corp.example", "4111 1111 1111 1111", "123-45-6789",
               "+1 415 555 0132", "DE89 3704 0044 0532 0130 00"]
    sent = " ".join((m.content or "") for c in model.calls for m in c.messages)
    for s in secrets:
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
    assert await replay_only(t, guards, run.id, A.react) == run.result
    t.close()
