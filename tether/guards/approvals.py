"""Human approval decisions, and two-person approval with Ed25519-signed decisions.

A decision is signed over a canonical payload that binds it to one approval id, one decision,
one approver, one nonce, the reason and the digest of the exact proposed action; so a signature
cannot be moved to another approval, flipped from deny to approve, attributed to someone else,
or reused (nonces are single-use), and the action cannot be changed after it was approved.

Who may decide: only an approver registered in the deployment's `KeyRegistry` (approver id ->
Ed25519 public key), and only by a decision signed with that approver's private key. This holds
for every approval, critical or not, approve or deny: a name typed on a command line proves
nothing. A critical approval needs two such decisions from two distinct approvers.

`ApprovalState` is the pure state machine of one approval; the runtime persists the request, the
accepted decisions and the used nonces, and rebuilds the state from them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, MutableSet
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tether.guards.errors import ApprovalError, KeyFormatError

ApprovalVerdict = Literal["approve", "deny"]
Status = Literal["pending", "approved", "denied"]
_APPROVER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def action_digest(tool: str, args: Any, salt: str = "") -> str:
    """sha256 of the canonical action; what an approver actually approves.

    `salt` is the request's own random value, journaled with it: the digest, which every
    decision signs, then differs between two requests for the same action under the same id.
    An approval id is `<run_id>.aN` and an idempotency key gives a resubmitted run the id of the
    deleted one, so without it a decision signed for the old run (kept in an audit record, a
    link, a script) was a valid decision for the new one. "" (requests journaled before salts
    existed) keeps the digest those requests' decisions were signed over."""
    action: dict[str, Any] = {"tool": tool, "args": args}
    if salt:
        action["salt"] = salt
    return hashlib.sha256(orjson.dumps(action, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_salt() -> str:
    """A request's salt (see `action_digest`): random, so nothing but the journal knows it."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode()


# --------------------------------------------------------------------------- keys
def load_public_key(data: str | bytes) -> Ed25519PublicKey:
    """PEM (SubjectPublicKeyInfo), OpenSSH `ssh-ed25519 ...`, or raw 32 bytes as base64/hex."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    text = raw.strip()
    key: object
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        elif text.startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(_decode_32(text.decode("ascii")))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
        raise KeyFormatError(f"malformed public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"not an Ed25519 public key ({type(key).__name__})")
    return key


def load_private_key(data: str | bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """PEM (PKCS#8), OpenSSH, or the raw 32-byte seed as base64/hex. A public key given instead
    is named as such: the parser's own words for it ("no BEGIN/END delimiters for a private
    key") did not tell the approver they had picked the wrong half of the pair."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    text = raw.strip()
    if is_public_key(text):
        raise KeyFormatError("this is a public key; a decision is signed with the private key")
    key: object
    try:
        if text.startswith(b"-----BEGIN OPENSSH"):
            key = serialization.load_ssh_private_key(text, password)
        elif text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_decode_32(text.decode("ascii")))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
        raise KeyFormatError(f"malformed private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError(f"not an Ed25519 private key ({type(key).__name__})")
    return key


def is_public_key(data: str | bytes) -> bool:
    """Whether `data` is a public key in one of its unambiguous forms (PEM or `ssh-ed25519 ...`;
    32 raw bytes could be either half, so they are never called public)."""
    text = (data.encode() if isinstance(data, str) else bytes(data)).strip()
    return text.startswith((b"-----BEGIN PUBLIC KEY-----", b"ssh-ed25519 ", b"ssh-rsa ",
                            b"ecdsa-sha2-", b"-----BEGIN SSH2 PUBLIC KEY-----"))


def _decode_32(text: str) -> bytes:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except binascii.Error as exc:
        raise ValueError(f"not base64 or hex: {exc}") from None
    if len(raw) != 32:
        raise ValueError(f"expected 32 key bytes, got {len(raw)}")
    return raw


def generate_keypair() -> tuple[str, str]:
    """(private PEM, public PEM) for a new approver (`public_line` gives the public half as the
    one line an approvers file entry holds)."""
    priv = Ed25519PrivateKey.generate()
    priv_pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return priv_pem, public_pem(priv.public_key())


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_line(key: str | bytes | Ed25519PublicKey) -> str:
    """A public key as one `ssh-ed25519 AAAA...` line: what `NAME: ` is followed by in an
    approvers file. A PEM key spans three lines, so `echo "alice: $(cat alice.pub)"` of one
    was not YAML; this form is what `tether approvals --keygen` writes to NAME.pub."""
    public = key if isinstance(key, Ed25519PublicKey) else load_public_key(key)
    return public.public_bytes(serialization.Encoding.OpenSSH,
                               serialization.PublicFormat.OpenSSH).decode()


def is_approver_id(name: str) -> bool:
    """Whether `name` can be an approver id (an approvers file key, an approver API key's name)."""
    return _APPROVER_ID.fullmatch(name) is not None


class KeyRegistry:
    """approver id -> public key. One key per approver; re-registering replaces (rotation)."""

    def __init__(self) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}

    def register(self, approver: str, public_key: str | bytes | Ed25519PublicKey) -> None:
        if not _APPROVER_ID.fullmatch(approver):
            raise ApprovalError(f"invalid approver id {approver!r}")
        key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(
            public_key)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for other, k in self._keys.items():
            if other != approver and k.public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw:
                # one key for two "people" would make two-person approval a one-person approval
                raise ApprovalError(f"this key is already registered to approver '{other}'")
        self._keys[approver] = key

    def get(self, approver: str) -> Ed25519PublicKey:
        try:
            return self._keys[approver]
        except KeyError:
            raise ApprovalError(
                f"approver '{approver}' has no registered key: only approvers registered in "
                "the deployment's approvers file (GuardConfig.approvers) may decide") from None

    def __contains__(self, approver: object) -> bool:
        return approver in self._keys

    def approver_of(self, key: Ed25519PublicKey) -> str | None:
        """The approver `key` is registered to, if any: who signs with its private half (a key
        is registered to one approver at most, see `register`)."""
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        mine = key.public_bytes(*raw)
        return next((name for name, k in self._keys.items() if k.public_bytes(*raw) == mine),
                    None)

    def approvers(self) -> list[str]:
        return sorted(self._keys)


# ---------------------------------------------------------------------- decisions
class UnsignedDecision(ApprovalError):
    """A decision carrying no signature: refused like any other, but a caller (`tether
    approve` without --key) can tell the approver how to sign, which no other refusal needs."""


@dataclass(frozen=True)
class ApprovalDecision:
    approval_id: str
    verdict: ApprovalVerdict
    approver: str
    reason: str
    action_digest: str
    nonce: str
    signature: str | None = None  # base64 Ed25519 over `payload()`

    def payload(self) -> bytes:
        return canonical_payload(self.approval_id, self.verdict, self.approver, self.reason,
                                 self.action_digest, self.nonce)

    def to_json(self) -> dict[str, Any]:
        return {"approval_id": self.approval_id, "verdict": self.verdict,
                "approver": self.approver, "reason": self.reason,
                "action_digest": self.action_digest, "nonce": self.nonce,
                "signature": self.signature}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalDecision:
        try:
            return cls(str(data["approval_id"]), data["verdict"], str(data["approver"]),
                       str(data.get("reason", "")), str(data["action_digest"]),
                       str(data["nonce"]), data.get("signature"))
        except KeyError as exc:
            raise ApprovalError(f"decision is missing field {exc}") from None



def canonical_payload(approval_id: str, verdict: str, approver: str, reason: str,
                      digest: str, nonce: str) -> bytes:
    return orjson.dumps(
        {"v": 1, "approval_id": approval_id, "verdict": verdict, "approver": approver,
         "reason": reason, "action_digest": digest, "nonce": nonce},
        option=orjson.OPT_SORT_KEYS)


def new_nonce() -> str:
    return base64.urlsafe_b64encode(os.urandom(18)).decode()


def sign_decision(key: Ed25519PrivateKey, approval_id: str, verdict: ApprovalVerdict, approver: str,
                  digest: str, reason: str = "", nonce: str | None = None) -> ApprovalDecision:
    d = ApprovalDecision(approval_id, verdict, approver, reason, digest, nonce or new_nonce())
    return replace(d, signature=base64.b64encode(key.sign(d.payload())).decode())


@dataclass(frozen=True)
class ApprovalRequest:
    """What the run proposed and waits on (persisted when the run suspends)."""

    id: str
    run_id: str
    tool: str
    args: Any
    rule: str
    critical: bool = False
    reason: str = ""
    #: journaled with the request and covered by its digest (`action_digest`); not in `to_json`
    #: (the digest shown there is what a decision signs)
    salt: str = ""

    @property
    def digest(self) -> str:
        return action_digest(self.tool, self.args, self.salt)

    @property
    def required(self) -> int:
        return 2 if self.critical else 1

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "run_id": self.run_id, "tool": self.tool, "args": self.args,
                "rule": self.rule, "critical": self.critical, "reason": self.reason,
                "action_digest": self.digest}


@dataclass
class ApprovalState:
    request: ApprovalRequest
    decisions: list[ApprovalDecision] = field(default_factory=list)
    status: Status = "pending"

    def apply(self, d: ApprovalDecision, keys: KeyRegistry, used_nonces: MutableSet[str]) -> Status:
        """Validate and record one decision; raise ApprovalError on anything suspicious.

        `used_nonces` is the durable set of every nonce ever accepted (replay protection across
        approvals and restarts); the accepted nonce is added to it.
        """
        req = self.request
        if d.approval_id != req.id:
            raise ApprovalError(f"decision is for approval '{d.approval_id}', not '{req.id}'")
        if self.status != "pending":
            raise ApprovalError(f"approval '{req.id}' is already {self.status}")
        if d.verdict not in ("approve", "deny"):
            raise ApprovalError(f"verdict must be approve or deny, got {d.verdict!r}")
        if d.action_digest != req.digest:
            raise ApprovalError(
                "decision was made for a different action (digest mismatch): other arguments, "
                "or an earlier request under this id (a run deleted and submitted again)")
        if len(d.nonce) < 16:
            raise ApprovalError("nonce too short (at least 16 characters of randomness)")
        if d.nonce in used_nonces:
            raise ApprovalError("replayed decision: nonce already used")
        if d.signature is None:
            critical = " is critical" if req.critical else ""
            sent = f"'{d.approver}' sent an unsigned one" if d.approver else "this one is not"
            raise UnsignedDecision(
                f"approval '{req.id}'{critical}: decisions must be signed with the private key "
                f"of a registered approver ({sent})")
        self._verify(d, keys)
        if any(prev.approver == d.approver for prev in self.decisions):
            raise ApprovalError(
                f"approver '{d.approver}' already decided on '{req.id}': two distinct approvers "
                "are required")
        used_nonces.add(d.nonce)
        self.decisions.append(d)
        if d.verdict == "deny":
            self.status = "denied"
        elif sum(1 for x in self.decisions if x.verdict == "approve") >= req.required:
            self.status = "approved"
        return self.status

    @staticmethod
    def _verify(d: ApprovalDecision, keys: KeyRegistry) -> None:
        key = keys.get(d.approver)
        try:
            sig = base64.b64decode(d.signature or "", validate=True)
        except (binascii.Error, ValueError):
            raise ApprovalError("signature is not valid base64") from None
        try:
            key.verify(sig, d.payload())
        except InvalidSignature:
            raise ApprovalError(
                f"invalid signature: not signed by '{d.approver}' or the decision was altered"
            ) from None

    @classmethod
    def rebuild(cls, request: ApprovalRequest, decisions: Iterable[ApprovalDecision],
                keys: KeyRegistry) -> ApprovalState:
        """Re-validate persisted decisions (a tampered row is rejected, not trusted)."""
        state = cls(request)
        nonces: set[str] = set()
        for d in decisions:
            state.apply(d, keys, nonces)
        return state


def load_key_registry(path: str | os.PathLike[str]) -> KeyRegistry:
    """A YAML/JSON mapping `approver: public key` (PEM, `ssh-ed25519 ...`, base64 or hex).

    Every refusal is one line naming the file: the YAML parser's own message spans lines, and
    `tether serve` or a `--guards` module failing to import showed it with literal \\n."""
    import yaml

    where = repr(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ApprovalError(f"cannot read approver keys {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ApprovalError(f"approver keys {where} is not a text file: write {_ENTRY}"
                            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ApprovalError(f"approver keys {where} is not valid YAML{_yaml_where(exc)}: "
                            f"{_yaml_hint(text)}") from None
    if isinstance(data, str) and is_public_key(data):  # a NAME.pub given for the file
        raise ApprovalError(f"approver keys {where} is one public key, not a mapping of "
                            f"approver ids to keys: write {_ENTRY}")
    if not isinstance(data, dict):
        raise ApprovalError(f"approver keys {where} must map approver ids to keys: write "
                            f"{_ENTRY}")
    _refuse_repeated_names(yaml.compose(text, Loader=yaml.SafeLoader), where)
    reg = KeyRegistry()
    for approver, key in data.items():
        if not isinstance(key, str):
            raise ApprovalError(f"approver {approver!r}: the key must be a string")
        try:
            reg.register(str(approver), key)
        except KeyFormatError as exc:
            raise KeyFormatError(f"approver {approver!r}: {exc}") from None
    return reg


def _refuse_repeated_names(node: Any, where: str) -> None:
    """YAML keeps the last of two entries of one name: a line appended with `>>` for an
    approver already there silently replaced their key (this file is who may approve)."""
    seen: dict[str, int] = {}
    for key, _value in getattr(node, "value", ()):
        name, line = str(key.value), key.start_mark.line + 1
        if name in seen:
            raise ApprovalError(f"approver keys {where}: approver {name!r} is there twice "
                                f"(lines {seen[name]} and {line}); keep one key per approver")
        seen[name] = line


_ENTRY = ("one line per approver, `NAME: ssh-ed25519 AAAA...`, as `tether approvals --keygen "
          "NAME` prints it")


def _yaml_where(exc: Exception) -> str:
    """` (line L, column C: problem)` of a YAML error, on one line."""
    mark = getattr(exc, "problem_mark", None)
    # a marked error's `problem` is the point ("could not find expected ':'"); any other (a
    # control character the reader refuses) has only its whole text, spread over lines
    problem = " ".join(str(getattr(exc, "problem", None) or
                           ("" if mark is not None else exc)).split())
    if mark is None:
        return f" ({problem})" if problem else ""
    return f" (line {mark.line + 1}, column {mark.column + 1}" + (
        f": {problem})" if problem else ")")


def _yaml_hint(text: str) -> str:
    if "-----BEGIN" in text:  # `echo "alice: $(cat alice.pub)"` of a PEM key
        return f"a PEM key spans lines: write {_ENTRY} (or indent the PEM under `NAME: |`)"
    return f"write {_ENTRY}"
