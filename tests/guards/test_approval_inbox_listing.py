"""The inbox lists an approval as long as it waits for someone: a two-person approval whose first
signature arrived is queued until a worker takes the decision in, and the second approver must
still find it (`tether approvals`, `GET /v1/approvals`), with the first one named."""

from __future__ import annotations

from tether import Tether
from tether.guards import inbox

from .test_approval_races import TRANSFER, _drive, _sign, _waiting


def test_a_two_person_approval_stays_listed_after_its_first_signature(db_path, people):
    keys, reg = people
    run_id, request = _waiting(db_path, TRANSFER, reg)
    t = Tether(db_path)
    try:
        assert inbox.decide(t, _sign("alice", request, "approve", keys), reg) == "pending"
        assert t.get(run_id).status == "queued"  # no worker has taken the decision in yet
        [listed] = inbox.list_pending(t.store, reg)
        assert listed.request.id == request.id and listed.decided_by == ("alice",)
        assert inbox.list_pending(t.store, reg, tenant="someone-else") == []
    finally:
        t.close()
    # once the worker took it in, it waits again, listed as before
    assert _drive(db_path, run_id, TRANSFER, reg).status == "waiting"
    t = Tether(db_path)
    try:
        [listed] = inbox.list_pending(t.store, reg)
        assert listed.decided_by == ("alice",)
    finally:
        t.close()
