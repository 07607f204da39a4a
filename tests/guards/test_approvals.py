"""Signed and two-person approvals against forged, replayed and same-person decisions."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether.guards.approvals import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalState,
    KeyRegistry,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_decision,
)
from tether.guards.errors import ApprovalError, KeyFormatError


@pytest.fixture
def people():
    keys = {}
    registry = KeyRegistry()
    for name in ("alice", "bob", "mallory"):
        priv_pem, pub_pem = generate_keypair()
        keys[name] = load_private_key(priv_pem)
        registry.register(name, pub_pem)
    return keys, registry


def critical_request(aid: str = "ap-1") -> ApprovalRequest:
    return ApprovalRequest(aid, "run-1", "transfer", {"to": "acct-9", "amount": 10_000},
                           "transfer", critical=True)


def test_two_distinct_signed_approvals(people):
    keys, reg = people
    req = critical_request()
    st, nonces = ApprovalState(req), set()
    assert st.apply(sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg,
                    nonces) == "pending"
    assert st.apply(sign_decision(keys["bob"], req.id, "approve", "bob", req.digest), reg,
                    nonces) == "approved"


def test_same_person_twice_rejected(people):
    keys, reg = people
    req = critical_request()
    st, nonces = ApprovalState(req), set()
    st.apply(sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg, nonces)
    with pytest.raises(ApprovalError, match="two distinct approvers"):
        st.apply(sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg,
                 nonces)
    assert st.status == "pending"


def test_unsigned_decision_on_critical_rejected(people):
    _, reg = people
    req = critical_request()
    d = ApprovalDecision(req.id, "approve", "alice", "", req.digest, "n" * 20)
    with pytest.raises(ApprovalError, match="must be signed"):
        ApprovalState(req).apply(d, reg, set())


def test_forged_with_other_approvers_key(people):
    keys, reg = people
    req = critical_request()
    forged = sign_decision(keys["mallory"], req.id, "approve", "bob", req.digest)
    with pytest.raises(ApprovalError, match="invalid signature"):
        ApprovalState(req).apply(forged, reg, set())


def test_forged_with_unregistered_key(people):
    _, reg = people
    req = critical_request()
    rogue = sign_decision(Ed25519PrivateKey.generate(), req.id, "approve", "eve", req.digest)
    with pytest.raises(ApprovalError, match="no registered key"):
        ApprovalState(req).apply(rogue, reg, set())


@pytest.mark.parametrize("field,value", [
    ("verdict", "deny"), ("approval_id", "ap-2"), ("reason", "changed"), ("nonce", "x" * 24),
])
def test_altered_decision_fails_verification(people, field, value):
    keys, reg = people
    req = critical_request("ap-2" if field == "approval_id" else "ap-1")
    good = sign_decision(keys["alice"], "ap-1", "deny" if field != "verdict" else "approve",
                         "alice", req.digest)
    data = good.to_json() | {field: value}
    with pytest.raises(ApprovalError, match="invalid signature"):
        ApprovalState(req).apply(ApprovalDecision.from_json(data), reg, set())


def test_decision_for_another_action_rejected(people):
    keys, reg = people
    req = critical_request()
    other = ApprovalRequest("ap-1", "run-1", "transfer", {"to": "acct-1", "amount": 1}, "t", True)
    d = sign_decision(keys["alice"], req.id, "approve", "alice", other.digest)
    with pytest.raises(ApprovalError, match="different action"):
        ApprovalState(req).apply(d, reg, set())


def test_replay_rejected_even_after_restart(people):
    keys, reg = people
    req = critical_request()
    d = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    nonces: set[str] = set()
    ApprovalState(req).apply(d, reg, nonces)
    rebuilt = ApprovalState.rebuild(req, [], reg)  # a fresh state, same durable nonce set
    with pytest.raises(ApprovalError, match="replayed"):
        rebuilt.apply(d, reg, nonces)


def test_rebuild_rejects_tampered_history(people):
    keys, reg = people
    req = critical_request()
    d = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    tampered = ApprovalDecision.from_json(d.to_json() | {"approver": "bob"})
    with pytest.raises(ApprovalError):
        ApprovalState.rebuild(req, [tampered], reg)


def test_deny_finishes_and_later_decisions_rejected(people):
    keys, reg = people
    req = critical_request()
    st, nonces = ApprovalState(req), set()
    assert st.apply(sign_decision(keys["bob"], req.id, "deny", "bob", req.digest, "no"), reg,
                    nonces) == "denied"
    with pytest.raises(ApprovalError, match="already denied"):
        st.apply(sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg, nonces)


def test_non_critical_needs_one_signed_decision_and_bad_signature_still_rejected(people):
    keys, reg = people
    req = ApprovalRequest("ap-3", "run-1", "refund", {"amount": 500}, "big-refunds")
    st = ApprovalState(req)
    bad = ApprovalDecision(req.id, "approve", "alice", "", req.digest, "n" * 20,
                   base64.b64encode(b"\0" * 64).decode())
    with pytest.raises(ApprovalError, match="invalid signature"):
        st.apply(bad, reg, set())
    # an unsigned decision from an unregistered approver used to approve it (issue 13)
    with pytest.raises(ApprovalError, match="must be signed"):
        st.apply(ApprovalDecision(req.id, "approve", "carol", "ok", req.digest, "m" * 20), reg,
                 set())
    assert st.apply(sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg,
                    set()) == "approved"


@pytest.mark.parametrize("bad", [
    "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "AAAA", "",
    "ssh-ed25519 AAAAnotbase64!!",
])
def test_malformed_keys(bad):
    with pytest.raises(KeyFormatError):
        load_public_key(bad)


def test_rsa_key_rejected_and_same_key_for_two_people(people):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KeyFormatError, match="not an Ed25519"):
        load_public_key(pem)
    keys, reg = people
    with pytest.raises(ApprovalError, match="already registered"):
        reg.register("alice2", keys["alice"].public_key())
    with pytest.raises(ApprovalError, match="invalid approver id"):
        reg.register("bad id!", keys["alice"].public_key())


def test_raw_key_formats(people):
    keys, _ = people
    from cryptography.hazmat.primitives import serialization

    raw = keys["alice"].public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    assert load_public_key(raw.hex()) is not None
    assert load_public_key(base64.b64encode(raw).decode()) is not None
