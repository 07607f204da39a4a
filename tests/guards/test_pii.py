"""PII masking and the encrypted vault."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

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


# ------------------------------------------------------- issue 13: what the masker missed
def _masked_as(text: str, value: str) -> list[str]:
    """The labels of the findings covering `value` inside `text` (empty: it was not masked)."""
    start = text.index(value)
    _, findings = PiiMasker().mask(text, Vault())
    return [f.label for f in findings if f.start <= start and f.end >= start + len(value)]


@pytest.mark.parametrize("value", ["josé.garcía@correo.es", "用户@例子.广告",
                                   "δοκιμή@παράδειγμα.δοκιμή", "Pelé@exemple.fr"])
def test_issue13_unicode_email_is_masked(value):
    assert _masked_as(f"write to {value} today", value) == ["EMAIL"]


@pytest.mark.parametrize("value", ["4155550132", "2125550187"])
def test_issue13_ten_digit_phone_is_masked(value):
    assert _masked_as(f"call me on {value} tomorrow", value) == ["PHONE"]


@pytest.mark.parametrize("value", ["030 12345678", "07700 900123", "0171 1234567",
                                   "06 12 34 56 78"])
def test_issue13_national_phone_is_masked(value):
    assert _masked_as(f"my number is {value}.", value) == ["PHONE"]


@pytest.mark.parametrize("value", ["4111.1111.1111.1111", "5500.0000.0000.0004"])
def test_issue13_dotted_card_is_masked(value):
    assert _masked_as(f"card {value} expires 09/27", value) == ["CARD"]


@pytest.mark.parametrize("text,value", [("SSN 123456789 on file", "123456789"),
                                        ("social security number: 219099999", "219099999")])
def test_issue13_ssn_without_dashes_is_masked(text, value):
    assert _masked_as(text, value) == ["SSN"]


@pytest.mark.parametrize("value", ["de89 3704 0044 0532 0130 00", "gb82west12345698765432"])
def test_issue13_lower_case_iban_is_masked(value):
    assert _masked_as(f"pay to {value} please", value) == ["IBAN"]


@pytest.mark.parametrize("text,value", [("password=hunter2", "hunter2"),
                                        ("db_password = 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
                                        ('{"api_key": "k3y-19ab"}', "k3y-19ab")])
def test_issue13_password_assignment_is_masked(text, value):
    assert _masked_as(text, value) == ["SECRET"]
    assert "password" not in value and PiiMasker().mask(text, Vault())[0].count("[SECRET_1]") == 1


def test_issue13_unsigned_jwt_is_masked():
    jwt = ("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
           "eyJzdWIiOiIxMjM0NTY3ODkwIiwiYWRtaW4iOnRydWV9.")
    assert _masked_as(f"token {jwt} expired", jwt) == ["SECRET"]


@pytest.mark.parametrize("text", ["2024-01-15 10:30", "sizes 10 20 30 40 50", "release 1.2.3.4",
                                  "getUserProfileById2FactorToken()"])
def test_issue13_ordinary_text_is_left_alone(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


# ------------------------------------------------------------ the labelled corpus (floors)
# Measured on tests/guards/data/pii_corpus.jsonl (490 texts) when these floors were set:
# precision 0.996, recall 0.989 overall; lowest per-kind recall 0.962 (IP); 1 of 245 ordinary
# texts flagged. The floors sit a little below, so a regression fails and noise does not.
# `make bench-pii` prints the current figures (benchmarks/results/pii.md).
def _corpus_score():
    from .data.pii_scoring import load_corpus, score

    masker = PiiMasker()
    samples = load_corpus()
    return samples, score(lambda text: masker.find(text), samples)


def test_corpus_is_large_labelled_and_covers_both_classes_and_every_kind():
    from .data.pii_scoring import KINDS

    samples, result = _corpus_score()
    sensitive = [s for s in samples if s.cls == "sensitive"]
    ordinary = [s for s in samples if s.cls == "ordinary"]
    assert len(samples) >= 300 and len(sensitive) >= 150 and len(ordinary) >= 150
    assert {s.split for s in samples} == {"dev", "holdout"}
    for kind in KINDS:
        assert sum(1 for s in sensitive for sp in s.spans if sp[0] == kind) >= 20, kind
    assert result.gold == sum(len(s.spans) for s in sensitive)


def test_masker_meets_its_floors_on_the_corpus():
    _, result = _corpus_score()
    overall = result.overall
    assert overall.precision >= 0.97, result.false_alarms
    assert overall.recall >= 0.96, result.misses
    assert result.masked_recall >= 0.96, result.misses
    assert result.ordinary_flag_rate <= 0.02, result.false_alarms
    for kind, counts in result.per_kind.items():
        assert counts.recall >= 0.93, (kind, [m for m in result.misses if m[1] == kind])
        assert counts.precision >= 0.95, (kind, [f for f in result.false_alarms
                                                 if f[1] == kind])


# ------------------------------------------------------------------ boundaries and checks
def test_iban_ends_where_its_country_says():
    text = "IBAN DE89 3704 0044 0532 0130 00 are on file"
    assert PiiMasker().mask(text, Vault())[0] == "IBAN [IBAN_1] are on file"


@pytest.mark.parametrize("text", [
    "ref 3704 0044 0532 0130 01",  # Luhn-valid by chance, but no network issues 18 digits at 37
    "IBAN XX89 3704 0044 0532 0130 00",  # no such country
    "de89 3704 0044 0532 0130 0",  # one digit short for Germany
])
def test_numbers_that_only_look_like_cards_or_ibans(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


@pytest.mark.parametrize("text", [
    "password: click the link we sent", "token = self.token", "password = request.form['pw']",
    "secret = get_secret('db')", "if password == confirm_password:", "api_key=os.environ['K']",
    "password: ********", "token: ${GITHUB_TOKEN}", "def login(user: str, password: str):",
])
def test_credential_names_without_a_credential_are_left_alone(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


@pytest.mark.parametrize("text", ["bind 0.0.0.0:8080", "curl http://127.0.0.1:8000/",
                                  "netmask 255.255.255.0", "network 10.0.0.0/8",
                                  "deploying 1.14.2.7-rc1", "v1.2.3.4"])
def test_addresses_that_name_nobody_are_left_alone(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


@pytest.mark.parametrize("text", ["order #4155550132 shipped", "invoice 4155550132",
                                  "https://example.com/users/4155550132"])
def test_digit_runs_named_as_identifiers_are_not_phone_numbers(text):
    masked, findings = PiiMasker().mask(text, Vault())
    assert masked == text, findings


# ----------------------------------------------------------- values the vault already knows
def _vault_with(value: str) -> tuple[PiiMasker, Vault]:
    masker, vault = PiiMasker(), Vault()
    masker.mask(f"the customer is {value}", vault)
    assert vault.entries(), value
    return masker, vault


@pytest.mark.parametrize("disguise", [
    lambda v: v.encode().hex(), lambda v: v.encode().hex().upper(),
    lambda v: base64.b64encode(v.encode()).decode(),
    lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
    lambda v: v[::-1], lambda v: quote(v, safe=""),
    lambda v: ",".join(str(ord(c)) for c in v), lambda v: " ".join(str(ord(c)) for c in v),
    lambda v: "".join(f"&#{ord(c)};" for c in v), lambda v: "".join(f"\\u{ord(c):04x}" for c in v),
    lambda v: base64.b64encode(v.encode().hex().encode()).decode(),  # two layers
], ids=["hex", "HEX", "base64", "base64url", "reversed", "url", "codes,", "codes ", "html",
        "unicode-escapes", "base64-of-hex"])
def test_a_known_value_is_masked_in_any_disguise(disguise):
    value = "zoe.quintana@mailhost.example"
    masker, vault = _vault_with(value)
    hidden = disguise(value)
    masked, findings = masker.mask(f"result: {hidden} (done)", vault)
    assert hidden not in masked and findings, masked
    assert masked.startswith("result: [EMAIL_") and masked.endswith(" (done)")


def test_a_known_value_in_other_case_is_masked():
    masker, vault = _vault_with("SSN 219-09-9999")
    assert masker.mask("ssn: 219-09-9999 again", vault)[0] == "ssn: [SSN_1] again"


def test_placeholders_are_never_masked_again():
    masker, vault = _vault_with("jane@corp.example")
    text = "send [EMAIL_1] to [EMAIL_1] and [CARD_7]"
    assert masker.mask(text, vault)[0] == text


def test_release_fills_in_only_the_granted_kinds():
    masker, vault = PiiMasker(), Vault()
    masker.mask("mail jane@corp.example card 4111 1111 1111 1111", vault)
    args = {"to": "[EMAIL_1]", "body": "card [CARD_1]", "[EMAIL_1]": 1, "other": "[EMAIL_9]"}
    filled, released = vault.release(args, {"email"})
    assert filled == {"to": "jane@corp.example", "body": "card [CARD_1]",
                      "[EMAIL_1]": 1, "other": "[EMAIL_9]"}  # keys are never rewritten
    assert {ph: k.value for ph, k in released.items()} == {"[EMAIL_1]": "jane@corp.example"}
    assert vault.release(args, set()) == (args, {})


def test_the_recognizer_cache_does_not_change_results():
    masker = PiiMasker()
    text = "call +1 415 555 0132 or mail a@b.example"
    first = masker.mask(text, Vault())
    second = masker.mask(text, Vault())
    assert first == second and first[0] == "call [PHONE_1] or mail [EMAIL_1]"


def test_a_fresh_masker_masks_alike_with_a_cache_of_its_own():
    from tether.guards.pii import PiiMasker, Vault

    built = PiiMasker()
    fresh = built.fresh()
    text = "mail jane.doe@corp.example or call +1 415 555 0132, card 4111 1111 1111 1111"
    assert fresh.recognizers is built.recognizers
    assert fresh.mask(text, Vault()) == PiiMasker().mask(text, Vault())
    assert text in fresh._recent and text not in built._recent
