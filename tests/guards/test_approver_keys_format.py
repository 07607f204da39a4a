"""The approver key files agree with the approvers file, and what refuses them says why in one line.

Before: `tether approvals --keygen alice` wrote alice.pub as PEM while an approvers file entry is
one `alice: ssh-ed25519 ...` line, so `echo "alice: $(cat alice.pub)" > approvers.yaml` was not
YAML, and the refusal carried the parser's multi-line message (shown with literal \\n by `tether
serve` and by a --guards module that failed to import). A public key given where the private one
is needed was "malformed private key: Valid PEM but no BEGIN/END delimiters...". An approver API
key created without --name decided as `approver-<id>`, an approver no approvers file registers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether import Tether
from tether.cli import app
from tether.guards import KeyFormatError, generate_keypair, load_private_key
from tether.guards.approvals import ApprovalError, load_key_registry, load_public_key
from tether.server.keys import ApiKeys, KeyRequestError, Role


def test_keygen_writes_the_public_key_as_the_approvers_file_takes_it(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["approvals", "--keygen", str(tmp_path / "alice")])
    assert r.exit_code == 0, r.output
    pub = (tmp_path / "alice.pub").read_text()
    assert pub.startswith("ssh-ed25519 ") and pub.count("\n") == 1
    assert f"alice: {pub.strip()}" in r.output  # the line printed is the file's content
    # the shell idiom a newcomer tries, as a shell runs it
    subprocess.run('echo "alice: $(cat alice.pub)" > approvers.yaml', shell=True, check=True,
                   cwd=tmp_path)
    registry = load_key_registry(tmp_path / "approvers.yaml")
    private = load_private_key((tmp_path / "alice.key").read_bytes())
    assert registry.approver_of(private.public_key()) == "alice"


def test_an_old_pem_public_key_file_is_still_read(tmp_path: Path) -> None:
    _, pem = generate_keypair()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "block.yaml").write_text("alice: |\n" + "".join(
        f"  {line}\n" for line in pem.splitlines()))
    assert load_key_registry(tmp_path / "block.yaml").approvers() == ["alice"]
    assert load_public_key(pem) == load_public_key(load_public_key(pem).public_bytes_raw().hex())


def test_a_pem_pasted_on_one_entry_line_is_refused_in_one_line(tmp_path: Path) -> None:
    _, pem = generate_keypair()
    path = tmp_path / "approvers.yaml"
    path.write_text(f"alice: {pem}")  # `echo "alice: $(cat alice.pub)"` of a PEM .pub
    with pytest.raises(ApprovalError) as caught:
        load_key_registry(path)
    message = str(caught.value)
    assert "\n" not in message and "\\n" not in repr(caught.value)
    assert message.startswith(f"approver keys '{path}' is not valid YAML (line 3, column 1")
    assert "a PEM key spans lines: write one line per approver, `NAME: ssh-ed25519" in message


def test_a_public_key_file_given_as_the_approvers_file_says_so(tmp_path: Path) -> None:
    _, pem = generate_keypair()
    path = tmp_path / "alice.pub"
    path.write_text(pem)
    with pytest.raises(ApprovalError, match="is one public key, not a mapping of approver ids"):
        load_key_registry(path)


def test_a_public_key_is_not_taken_for_a_malformed_private_key() -> None:
    from tether.guards.approvals import public_line

    _, pem = generate_keypair()
    for public in (pem, public_line(pem)):
        with pytest.raises(KeyFormatError, match=r"^this is a public key; a decision is signed "
                           r"with the private key$"):
            load_private_key(public)


def test_an_approver_key_needs_the_approver_id_it_decides_as(tmp_path: Path) -> None:
    t = Tether(tmp_path / "keys.db")
    try:
        keys = ApiKeys(t.store)
        for role in ("approver", Role.approver):
            with pytest.raises(KeyRequestError, match="an approver key needs a name"):
                keys.create("acme", role)
        assert keys.list() == []  # nothing was created
        assert keys.create("acme", "approver", "alice")[1].name == "alice"
        assert keys.create("acme", "viewer")[1].name.startswith("viewer-")  # others may omit it
    finally:
        t.close()


def test_an_approver_named_twice_is_refused(tmp_path: Path) -> None:
    """YAML keeps the last entry: `echo "alice: $(cat new.pub)" >> approvers.yaml` for an
    alice already there replaced her key without a word, in the file that says who approves."""
    from tether.guards.approvals import public_line

    first, second = (public_line(generate_keypair()[1]) for _ in range(2))
    path = tmp_path / "approvers.yaml"
    path.write_text(f"alice: {first}\nbob: {first}\nalice: {second}\n")
    with pytest.raises(ApprovalError, match=r"approver 'alice' is there twice \(lines 1 and "
                                            r"3\); keep one key per approver"):
        load_key_registry(path)
    path.write_text(f"alice: {first}\nbob: {second}\n")
    assert set(load_key_registry(path).approvers()) == {"alice", "bob"}
