"""`tether policy|pii|approvals|approve|deny`: the guards from the command line.

Exit codes: 0 ok; 1 a check failed (invalid policy, a denied decision, a rejected approval);
2 bad usage (unreadable file, malformed JSON or key).

The guards library (cryptography, numpy for embeddings) is imported inside each command, so
registering them costs `tether --help` nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tether.cli._common import DB_OPTION, console, err_console, fail, full_run_id, open_tether

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tether.guards.approvals import KeyRegistry
    from tether.runtime import Tether

policy_app = typer.Typer(help="Validate and explain policy files.", no_args_is_help=True)
pii_app = typer.Typer(help="PII masking.", no_args_is_help=True)

KeysOpt = Annotated[
    str | None,
    typer.Option("--keys", envvar="TETHER_APPROVERS",
                 help="YAML file mapping approver ids to Ed25519 public keys."),
]
# every decision is signed by a registered approver (docs/guards.md, "Who may approve what")
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", envvar="TETHER_APPROVER_KEY",
                 help="Your Ed25519 private key: every decision must be signed with it."),
]
# `approve` and `deny` take the same arguments: one decision, either way
ApprovalIdArg = Annotated[str, typer.Argument(
    help="Approval id RUN.aN (see `tether approvals`); RUN may be a unique prefix.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (journaled).")]
ApproverOpt = Annotated[str | None, typer.Option(
    "--approver", envvar="TETHER_APPROVER",
    help="Your approver id (default: the approver --keys registers --key's public key to, "
         "else your user name).")]


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.add_typer(pii_app, name="pii")
    app.command("approvals")(approvals)
    app.command("approve")(approve)
    app.command("deny")(deny)


# ----------------------------------------------------------------------------- policy
@policy_app.command("check")
def policy_check(file: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Validate FILE; on error print FILE:LINE: reason and exit 1."""
    from tether.guards.errors import PolicyLoadError
    from tether.guards.policy import load_policy

    try:
        p = load_policy(file)
    except PolicyLoadError as exc:
        err_console.print("[bold red]invalid policy[/] ", end="")
        err_console.print(str(exc), markup=False, soft_wrap=True)  # `[`: a regex, not markup
        raise typer.Exit(1) from None
    console.print(f"ok: policy '{p.name}' — {len(p.rules)} rule(s), "
                  f"{len(p.honeypots)} honeypot(s), read_only={str(p.read_only).lower()}")


@policy_app.command("explain")
def policy_explain(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
    tool: Annotated[str, typer.Argument(help="Tool name.")],
    args_json: Annotated[str, typer.Argument(help="Tool arguments as a JSON object.")] = "{}",
    side_effect: Annotated[str | None, typer.Option(
        "--side-effect", help="read | write | destructive (unknown = destructive).")] = None,
    kind: Annotated[str, typer.Option("--kind", help="python | http | openapi")] = "python",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show which rule decides TOOL with ARGS_JSON, and why. Exit 0 allow, 1 anything else."""
    from tether.guards.errors import PolicyLoadError
    from tether.guards.policy import ToolInfo, load_policy

    try:
        p = load_policy(file)
    except PolicyLoadError as exc:
        fail(str(exc), 2)
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        fail(f"ARGS_JSON is not valid JSON ({exc.msg} at column {exc.colno})", 2)
    if side_effect not in (None, "read", "write", "destructive"):
        fail("--side-effect must be read, write or destructive", 2)
    d = p.decide(ToolInfo(tool, side_effect=side_effect, kind=kind), args)  # type: ignore[arg-type]
    if as_json:
        console.print_json(data={**d.to_json(), "trace": [t.__dict__ for t in d.trace]})
    else:
        console.print(d.explain(), markup=False)
    if d.action != "allow":
        raise typer.Exit(1)


# -------------------------------------------------------------------------------- pii
@pii_app.command("mask")
def pii_mask(
    pattern: Annotated[list[str] | None, typer.Option(
        "--pattern", "-p", help="Extra pattern LABEL=REGEX (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON.")] = False,
) -> None:
    """Read text on stdin, print it masked, then the placeholders found (on stderr)."""
    from tether.guards.pii import PiiMasker, PiiPattern, Vault

    extra = []
    for item in pattern or []:
        label, sep, regex = item.partition("=")
        if not sep:
            fail(f"--pattern {item!r}: expected LABEL=REGEX", 2)
        try:
            extra.append(PiiPattern.custom(label, regex))
        except ValueError as exc:
            fail(f"--pattern {item!r}: {exc}", 2)
    text = sys.stdin.read()
    vault = Vault()
    masked, findings = PiiMasker(extra).mask(text, vault)
    if as_json:
        console.print_json(data={"masked": masked, "placeholders": [
            {"placeholder": f.placeholder, "type": f.label, "start": f.start, "end": f.end}
            for f in findings]})
        return
    sys.stdout.write(masked)
    sys.stdout.flush()
    seen: set[str] = set()
    for f in findings:
        if f.placeholder not in seen:
            seen.add(f.placeholder)
            err_console.print(f"{f.placeholder}\t{f.label}", markup=False)


@pii_app.command("keygen")
def pii_keygen() -> None:
    """Print a new vault key for TETHER_VAULT_KEY."""
    from tether.guards.pii import new_vault_key

    console.print(new_vault_key())


# -------------------------------------------------------------------------- approvals
def approvals(
    keygen: Annotated[str | None, typer.Option(
        "--keygen", help="Write a new Ed25519 key pair to PREFIX.key / PREFIX.pub and exit.")]
    = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    keys: KeysOpt = None,
    db: str = DB_OPTION,
) -> None:
    """List pending approvals (or create an approver key pair with --keygen)."""
    from rich.markup import escape

    from tether.cli._safe import safe_text
    from tether.guards import inbox
    from tether.guards.approvals import generate_keypair

    if keygen:
        priv, pub = generate_keypair()
        key_path, pub_path = Path(keygen + ".key"), Path(keygen + ".pub")
        for path in (key_path, pub_path):  # never overwrite a key someone may be using
            if path.exists():
                fail(f"--keygen {keygen}: {path} already exists; keep that key pair, or give "
                     "another NAME (or move the old files away first)")
        try:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            fail(f"--keygen {keygen}: cannot create {key_path}: {exc.strerror}")
        with os.fdopen(fd, "w") as fh:
            fh.write(priv)
        pub_path.write_text(pub)
        console.print(f"wrote {key_path} (private, keep it secret) and {pub_path}; register the "
                      "public key in the approvers file (--keys), the same file the workers' "
                      "GuardConfig.approvers is loaded from, with this line:", soft_wrap=True)
        console.print(f"{Path(keygen).name}: {_one_line(pub)}", markup=False, soft_wrap=True)
        return
    registry = _registry(keys)  # a bad approvers file is bad usage (2), found before the db
    tether = open_tether(db, must_exist=True)
    pending = inbox.list_pending(tether.store, registry, tenant)
    if not pending:
        console.print("no pending approvals")
        return
    for p in pending:
        r = p.request
        need = "2 signed approvals (critical)" if r.critical else "1 approval"
        done = f"; approved by {', '.join(p.decided_by)}" if p.decided_by else ""
        # one line each, whatever the tool's name (an MCP server's) or rule holds: a newline
        # or a `[` in it must not forge another approval nor become markup
        call = safe_text(f"{r.tool}({json.dumps(r.args)})", one_line=True)
        console.print(f"[bold]{escape(r.id)}[/]  tenant={escape(p.tenant)}  {escape(call)}",
                      highlight=False, soft_wrap=True)
        console.print(safe_text(f"    rule={r.rule}  needs {need}{done}  "
                                f"digest={r.digest[:16]}", one_line=True), markup=False)


def approve(
    approval_id: ApprovalIdArg,
    reason: ReasonOpt = "",
    approver: ApproverOpt = None,
    key: KeyOpt = None,
    keys: KeysOpt = None,
    db: str = DB_OPTION,
) -> None:
    """Approve a pending action."""
    _decide(approval_id, "approve", reason, approver, key, keys, db)


def deny(
    approval_id: ApprovalIdArg,
    reason: ReasonOpt = "",
    approver: ApproverOpt = None,
    key: KeyOpt = None,
    keys: KeysOpt = None,
    db: str = DB_OPTION,
) -> None:
    """Deny a pending action."""
    _decide(approval_id, "deny", reason, approver, key, keys, db)


def _registry(path: str | None) -> KeyRegistry:
    from tether.guards.approvals import KeyRegistry, load_key_registry
    from tether.guards.errors import ApprovalError

    if not path:
        return KeyRegistry()
    try:
        return load_key_registry(path)
    except ApprovalError as exc:
        fail(str(exc), 2)


def _full_approval_id(tether: Tether, given: str) -> str:
    """An approval id is RUN.aN; RUN may be given by its first characters, as everywhere a run
    id is taken. Resolved before anything is signed: the signature covers the whole id."""
    run_part, dot, suffix = given.rpartition(".")
    if not dot or not run_part:
        return given
    return f"{full_run_id(tether, run_part)}.{suffix}"


def _one_line(public_pem: str) -> str:
    """A public key as one `ssh-ed25519 ...` line: what an approvers file entry holds (a PEM
    key spans lines, and pasted after `alice: ` it is not valid YAML)."""
    from cryptography.hazmat.primitives import serialization

    from tether.guards.approvals import load_public_key

    return load_public_key(public_pem).public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _approver_of(private: Ed25519PrivateKey, registry: KeyRegistry) -> str | None:
    """The approver the registry registers this private key's public half to, if any."""
    from cryptography.hazmat.primitives import serialization

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    mine = private.public_key().public_bytes(*raw)
    return next((name for name in registry.approvers()
                 if registry.get(name).public_bytes(*raw) == mine), None)


def _hint(key_path: Path | None, registry: KeyRegistry, who: str = "") -> str:
    """What the operator is missing when a decision is refused."""
    if key_path is None:
        return (" — sign it: pass --key YOUR_PRIVATE_KEY (or set TETHER_APPROVER_KEY); create a "
                "pair with `tether approvals --keygen NAME` and register NAME.pub in the "
                "approvers file")
    if not registry.approvers():
        return (" — no approvers file given: pass --keys approvers.yaml (or set "
                "TETHER_APPROVERS), the same file the workers' GuardConfig.approvers is loaded "
                "from")
    if who and who not in registry:
        return (f" — {who!r} is not in the approvers file: pass --approver NAME, one of "
                f"{', '.join(registry.approvers())}, with that approver's --key")
    return ""


def _decide(approval_id: str, verdict: str, reason: str, approver: str | None,
            key_path: Path | None, keys: str | None, db: str | None) -> None:
    from tether.guards import inbox
    from tether.guards.approvals import (
        ApprovalDecision,
        load_private_key,
        new_nonce,
        sign_decision,
    )
    from tether.guards.errors import ApprovalError, KeyFormatError

    registry = _registry(keys)
    who = approver or getpass.getuser()
    tether = open_tether(db, must_exist=True)
    approval_id = _full_approval_id(tether, approval_id)
    try:
        request, _ = inbox.find(tether.store, approval_id)
        if key_path is not None:
            try:
                private = load_private_key(key_path.read_bytes())
            except OSError as exc:
                fail(f"cannot read key {str(key_path)!r}: {exc.strerror}", 2)
            if approver is None:  # the key says who signs, when the approvers file knows it
                who = _approver_of(private, registry) or who
            decision = sign_decision(private, approval_id, verdict, who,  # type: ignore[arg-type]
                                     request.digest, reason)
        else:
            decision = ApprovalDecision(approval_id, verdict, who, reason,  # type: ignore[arg-type]
                                request.digest, new_nonce())
        status = inbox.decide(tether, decision, registry)
    except KeyFormatError as exc:
        fail(str(exc), 2)
    except ApprovalError as exc:
        fail(str(exc) + _hint(key_path, registry, who), 1)
    more = (" (one more distinct approver needed)" if status == "pending" else
            f"; run {request.run_id} resumes on the next worker that is free (`tether worker`)")
    console.print(f"{approval_id}: {verdict} recorded by {who}; status {status}{more}",
                  markup=False, soft_wrap=True)
