"""PII masking and the encrypted vault."""

from __future__ import annotations

import os

import pytest

from tether.guards.errors import VaultError
from tether.guards.pii import PiiMasker, PiiPattern, Vault, iban_ok, luhn_ok

SAMPLES = {
    "EMAIL": ["jane.doe+tag@example.co.uk"],
    "PHONE": ["+1 (415) 555-0132", "+44 20 7946 0958", "020 7946 0958"],
    "CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "SSN": ["123-45-6789"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "IP": ["192.168.1.20", "2001:db8::1"],
    "SECRET": [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
        "xoxb-1234567890-abcdefghij",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH\n-----END PRIVATE KEY-----",
        "q8Zr2Lx9Vb4Nw7Ty1Pk6Hs3Dm5Fj0Gc",  # generic high-entropy token
    ],
}


@pytest.mark.parametrize("label,value", [(k, v) for k, vs in SAMPLES.items() for v in vs])
def test_each_kind_is_masked(label, value):
    vault = Vault()
    text, findings = PiiMasker().mask(f"value: {value} end", vault)
    assert value not in text
    assert text == f"value: [{label}_1] end"
    assert vault.unmask_text(text) == f"value: {value} end"
    assert [f.label for f in findings] == [label]


@pytest.mark.parametrize("text", [
    "order 12345 shipped on 2024-01-15 at 10:30:00",
    "version 1.2.3 and build 4.5.6.7.8",
    "card 4111 1111 1111 1112 fails Luhn",
    "IBAN DE89 3704 0044 0532 0130 01 fails mod-97",
    "ip 999.1.1.1 is not an address",
    "hash 3f786850e387550fdab836ed7e6dc881de23001b and uuid "
    "550e8400-e29b-41d4-a716-446655440000",
    "the quick brown fox jumps over the lazy dog repeatedly",
])
def test_false_positives_are_left_alone(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


def test_invalid_ssn_is_not_labelled_ssn():
    # over-masking as a phone number is acceptable; calling it an SSN is not
    _, findings = PiiMasker().mask("ssn 000-12-3456 and 666-12-3456 and 900-12-3456", Vault())
    assert "SSN" not in {f.label for f in findings}


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert not luhn_ok("0000000000000000")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_placeholders_are_stable_and_distinct():
    m, v = PiiMasker(), Vault()
    a, _ = m.mask("a@x.io b@x.io a@x.io", v)
    b, _ = m.mask("again b@x.io", v)
    assert a == "[EMAIL_1] [EMAIL_2] [EMAIL_1]"
    assert b == "again [EMAIL_2]"


def test_unmask_nested_tool_arguments():
    m, v = PiiMasker(), Vault()
    m.mask("mail jane@corp.com card 4111111111111111", v)
    args = {"to": ["[EMAIL_1]"], "body": {"card": "[CARD_1]", "n": 3}, "other": "[EMAIL_9]"}
    assert v.unmask(args) == {"to": ["jane@corp.com"], "body": {"card": "4111111111111111",
                                                               "n": 3}, "other": "[EMAIL_9]"}


def test_user_pattern():
    m = PiiMasker([PiiPattern.custom("EMPLOYEE_ID", r"\bEMP-\d{6}\b")])
    text, _ = m.mask("badge EMP-004211 ok", Vault())
    assert text == "badge [EMPLOYEE_ID_1] ok"
    with pytest.raises(ValueError):
        PiiPattern.custom("lower", "x")
    with pytest.raises(ValueError):
        PiiPattern.custom("BAD", "(")


def test_mask_value_masks_json_structures():
    out = PiiMasker().mask_value({"messages": [{"content": "call +1 415 555 0132"}]}, Vault())
    assert out == {"messages": [{"content": "call [PHONE_1]"}]}


def test_vault_is_encrypted_and_bound_to_its_run():
    key = os.urandom(32)
    v = Vault()
    PiiMasker().mask("jane@corp.com 123-45-6789", v)
    blob = v.seal(key, context="run-1")
    assert b"jane@corp.com" not in blob and b"123-45-6789" not in blob
    again = Vault.open(blob, key, context="run-1")
    assert again.entries() == v.entries()
    assert again.placeholder_for("EMAIL", "jane@corp.com") == "[EMAIL_1]"
    assert again.placeholder_for("EMAIL", "new@corp.com") == "[EMAIL_2]"
    with pytest.raises(VaultError):
        Vault.open(blob, os.urandom(32), context="run-1")
    with pytest.raises(VaultError):
        Vault.open(blob, key, context="run-2")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(VaultError):
        Vault.open(tampered, key, context="run-1")
    with pytest.raises(VaultError):
        v.seal(b"short")
