"""`tether policy|pii|approvals|approve|deny`: the guards from the command line.

Exit codes: 0 ok; 1 a check failed (invalid policy, a denied decision, a rejected approval);
2 bad usage (unreadable file, malformed JSON or key).

The guards library (cryptography, numpy for embeddings) is imported inside each command, so
registering them costs `tether --help` nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tether.cli._common import (
    DB_OPTION,
    console,
    err_console,
    fail,
    full_run_id,
    load_registry,
    open_tether,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tether.guards.approvals import KeyRegistry
    from tether.guards.policy import Policy
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
    help="Your approver id (default: the approver --keys registers --key's public key to).")]


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.add_typer(pii_app, name="pii")
    app.command("approvals")(approvals)
    app.command("approve")(approve)
    app.command("deny")(deny)


# ----------------------------------------------------------------------------- policy
@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
    tools: Annotated[list[str] | None, typer.Option(
        "--tools", help="MODULE:REGISTRY (or MODULE, or FILE.py), as `tether mcp serve` takes "
        "it: also report every tool name of the policy that matches none of its tools. "
        "Repeatable (the tools of all of them).")] = None,
    agents: Annotated[list[str] | None, typer.Option(
        "--agent", help="NAME (or NAME=MODULE:FUNCTION, as `tether mcp serve --agent`): a "
        "name the policy governs besides the --tools (an agent served as a tool). "
        "Repeatable.")] = None,
) -> None:
    """Validate FILE; on error print FILE:LINE: reason and exit 1.

    With --tools, exit 1 too when a rule names a tool that none of the tools matches.
    """
    from tether.guards.errors import PolicyLoadError
    from tether.guards.policy import load_policy

    if agents and not tools:
        fail("--agent goes with --tools: the names are checked against both", 2)
    names = _served_tool_names(tools or [])  # bad usage (2) before the policy is judged
    if names is not None:
        names += [a.partition("=")[0] for a in agents or []]
    try:
        p = load_policy(file)
    except PolicyLoadError as exc:
        err_console.print("[bold red]invalid policy[/] ", end="")
        err_console.print(str(exc), markup=False, soft_wrap=True)  # `[`: a regex, not markup
        raise typer.Exit(1) from None
    summary = (f"policy '{p.name}' — {len(p.rules)} rule(s), {len(p.honeypots)} honeypot(s), "
               f"read_only={str(p.read_only).lower()}")
    if names is None:
        console.print(f"ok: {summary}", markup=False, soft_wrap=True)
        return
    served = [*(tools or []), *(f"--agent {a.partition('=')[0]}" for a in agents or [])]
    if not _tools_match(file, p, names, ", ".join(served)):
        raise typer.Exit(1)
    console.print(f"ok: {summary}; every tool it names is served", markup=False,
                  soft_wrap=True)


def _served_tool_names(refs: list[str]) -> list[str] | None:
    """The tool names the --tools REFs serve, loaded as `tether mcp serve --tools` loads them
    (None: no --tools). A REF that does not load is bad usage: one line, exit 2."""
    if not refs:
        return None
    return [name for ref in refs for name in load_registry(ref).names()]


def _tools_match(file: Path, policy: Policy, names: list[str], of: str) -> bool:
    """Print what `check_tools` found, one line each; False if a rule names no served tool."""
    from tether.cli._safe import safe_text
    from tether.guards.policy import check_tools

    found = check_tools(policy, names)
    n = f"{len(found.tools)} tool{'' if len(found.tools) == 1 else 's'}"
    for u in found.unmatched:  # a glob or rule id is the policy's text: kept on its line
        where = f"{file}:{u.line}" if u.line else str(file)
        hint = f" (did you mean '{u.suggestion}'?)" if u.suggestion else ""
        if u.fails:
            line = (f"{where}: rule '{u.owner}' names tool '{u.glob}', which matches none of "
                    f"the {n} of {of}{hint}")
        else:
            line = (f"{where}: note: honeypot '{u.glob}' matches none of the {n} of "
                    f"{of}: only a call to a tool not served reaches it{hint}")
        console.print(safe_text(line, one_line=True), markup=False, soft_wrap=True)
    if found.denied_by_default:
        console.print(safe_text("denied by default: "
                                + ", ".join(found.denied_by_default), one_line=True),
                      markup=False, soft_wrap=True)
    return found.ok


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """As the runtime parses a proposal: a key given twice is refused, not the last kept."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"gives {key!r} twice")
        out[key] = value
    return out


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
        args = json.loads(args_json, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        fail(f"ARGS_JSON is not valid JSON ({exc.msg} at column {exc.colno})", 2)
    except ValueError as exc:
        fail(f"ARGS_JSON {exc}: the runtime refuses such a proposal before the policy sees "
             "it", 2)
    if not isinstance(args, dict):
        # the runtime refuses anything but an object before the policy judges it: an ALLOW
        # here would say something that never happens
        fail(f"ARGS_JSON must be a JSON object of the tool's arguments by name, not "
             f"{type(args).__name__}: the runtime refuses any other proposal", 2)
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
    from tether.guards.approvals import generate_keypair, public_line

    if keygen:
        priv, pub_pem = generate_keypair()
        # NAME.pub holds what an approvers file entry holds, so `echo "alice: $(cat
        # alice.pub)" >> approvers.yaml` registers it (a PEM .pub made that invalid YAML)
        pub = public_line(pub_pem) + "\n"
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
        console.print(f"{Path(keygen).name}: {pub.strip()}", markup=False, soft_wrap=True)
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


def _private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key --key names; a file that is not one is bad usage (2), found before the
    database is opened. The public half of the pair is the likely mistake, so it is named."""
    from tether.guards.approvals import is_public_key, load_private_key
    from tether.guards.errors import KeyFormatError

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--key {path}: cannot read it ({exc.strerror}); pass the private key file "
             "written by `tether approvals --keygen NAME` (NAME.key)", 2)
    if is_public_key(data):
        private = path.with_suffix(".key") if path.suffix == ".pub" else "NAME.key"
        fail(f"--key {path} is a public key; pass the private key file ({private}) written "
             "by `tether approvals --keygen`", 2)
    try:
        return load_private_key(data)
    except KeyFormatError as exc:
        fail(f"--key {path} is not an Ed25519 private key ({exc}); pass the private key file "
             "written by `tether approvals --keygen NAME` (NAME.key)", 2)


def _signer(private: Ed25519PrivateKey, key_path: Path, registry: KeyRegistry,
            keys: str | None, approver: str | None) -> str:
    """Who signs: --approver, else the approver the approvers file registers the key's public
    half to. A mismatch is refused here only to say which file and which name are wrong (the
    OS user name used to stand in and was blamed instead); `inbox.decide`, and the run when
    it resumes, verify the decision against the registry all the same."""
    from tether.guards.approvals import is_approver_id, public_line

    if not keys:
        fail(f"no registered key to check --key {key_path} against: pass --keys "
             "approvers.yaml (or set TETHER_APPROVERS), the file the workers' "
             "GuardConfig.approvers is loaded from", 1)
    if not registry.approvers():
        fail(f"{keys} registers no approver, so no registered key matches --key {key_path}: "
             "add one line `NAME: ssh-ed25519 AAAA...` per approver (as `tether approvals "
             "--keygen NAME` prints it)", 1)
    names = ", ".join(registry.approvers())
    owner = registry.approver_of(private.public_key())
    if approver is None:
        if owner is not None:
            return owner
        stem = key_path.stem if is_approver_id(key_path.stem) else "NAME"
        line = f"`{stem}: {public_line(private.public_key())}`"
        fix = (f"{keys} registers another key to {stem!r} (an older pair?): sign with the key "
               f"registered there, or replace that line with {line}" if stem in registry else
               f"sign with the key of one of them, or register this one with the line {line} "
               f"in {keys} and in the workers' approvers file")
        fail(f"the key in {key_path} matches no approver in {keys} (its approvers: {names}); "
             f"{fix}", 1)
    if approver not in registry:
        fail(f"--approver {approver!r} has no registered key in {keys}: pass --approver NAME, "
             f"one of {names}, with that approver's --key (or leave --approver out: the key "
             "says who signs)", 1)
    if owner != approver:
        whose = f"it is {owner}'s" if owner else "it matches no approver there"
        fail(f"--key {key_path} is not {approver}'s key in {keys} ({whose}), so the decision "
             f"would carry an invalid signature: pass {approver}'s --key"
             + (f", or leave --approver out to sign as {owner}" if owner else ""), 1)
    return approver


_SIGN_HINT = (" — sign it: pass --key YOUR_PRIVATE_KEY (or set TETHER_APPROVER_KEY); create a "
              "pair with `tether approvals --keygen NAME` and add the line it prints to the "
              "approvers file")


def _decide(approval_id: str, verdict: str, reason: str, approver: str | None,
            key_path: Path | None, keys: str | None, db: str | None) -> None:
    from tether.guards import inbox
    from tether.guards.approvals import (
        ApprovalDecision,
        UnsignedDecision,
        new_nonce,
        sign_decision,
    )
    from tether.guards.errors import ApprovalError

    approver = approver or None  # TETHER_APPROVER= (empty) is no --approver
    registry = _registry(keys)  # the files first: bad usage (2) before the database
    private = _private_key(key_path) if key_path is not None else None
    tether = open_tether(db, must_exist=True)
    approval_id = _full_approval_id(tether, approval_id)
    try:
        request, _ = inbox.find(tether.store, approval_id)
    except ApprovalError as exc:  # the id alone is wrong: nothing about keys to say yet
        listing = "" if "tether approvals" in str(exc) else (
            "; list the pending ones with `tether approvals`")
        fail(f"{exc}{listing}", 1)
    if private is None or key_path is None:
        # refused when it is checked (unsigned), but checked first for what else is wrong:
        # a finished run, an approval already decided
        who = approver or ""  # not the OS user: nothing says they are an approver
        decision = ApprovalDecision(approval_id, verdict, who, reason,  # type: ignore[arg-type]
                                    request.digest, new_nonce())
    else:
        who = _signer(private, key_path, registry, keys, approver)
        decision = sign_decision(private, approval_id, verdict, who,  # type: ignore[arg-type]
                                 request.digest, reason)
    try:
        status = inbox.decide(tether, decision, registry)
    except UnsignedDecision as exc:
        fail(f"{exc}{_SIGN_HINT}", 1)
    except ApprovalError as exc:
        fail(str(exc), 1)
    more = (" (one more distinct approver needed)" if status == "pending" else
            f"; run {request.run_id} resumes on the next worker that is free (`tether worker`)")
    console.print(f"{approval_id}: {verdict} recorded by {who}; status {status}{more}",
                  markup=False, soft_wrap=True)
