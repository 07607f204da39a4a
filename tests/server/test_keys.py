"""API keys: stored hashed (the key is nowhere in the database file), shown once by `tether
keys create`, refused once revoked, and bad requests for a key refused with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.runtime import Tether
from tether.server.keys import ApiKeys, KeyRequestError, Role

from . import api_support as S

ROOT = Path(__file__).resolve().parents[2]


def _tether(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args, "--db", str(db)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_keys_are_stored_hashed_never_plain(tmp_path: Path) -> None:
    t = Tether(tmp_path / "k.db")
    keys = ApiKeys(t.store)
    key, who = keys.create("acme", "operator", "olga")
    t.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the db, its WAL and shm
    # tk_<id>_<secret>: the secret (token_urlsafe) may itself contain "_"
    secret = key.removeprefix(f"tk_{who.key_id}_")
    assert len(secret) >= 40, key
    assert secret.encode() not in raw and key.encode() not in raw
    assert who.key_id.encode() in raw  # the id is stored (it is not a secret)


def test_authenticate_and_revoke(tmp_path: Path) -> None:
    t = Tether(tmp_path / "k.db")
    keys = ApiKeys(t.store)
    key, who = keys.create("acme", Role.approver, "alice")
    found = keys.authenticate(key)
    assert found is not None and (found.tenant, found.role, found.name) == (
        "acme", Role.approver, "alice")
    assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.authenticate("tk_" + who.key_id + "_guess") is None
    assert keys.revoke(who.key_id) and not keys.revoke(who.key_id)
    assert keys.authenticate(key) is None
    assert [p.revoked_at is not None for p in keys.list("acme")] == [True]
    t.close()


@pytest.mark.parametrize("tenant,role,name,match", [
    ("", "viewer", None, "invalid tenant"),
    ("a b", "viewer", None, "invalid tenant"),
    ("acme", "root", None, "unknown role 'root'"),
    ("acme", "viewer", "al ice", "invalid key name"),
])
def test_bad_key_requests(tmp_path: Path, tenant: str, role: str, name: str | None,
                          match: str) -> None:
    t = Tether(tmp_path / "k.db")
    with pytest.raises(KeyRequestError, match=match):
        ApiKeys(t.store).create(tenant, role, name)
    t.close()


def test_cli_prints_the_key_once_and_lists_without_it(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    made = _tether("keys", "create", "--tenant", "acme", "--role", "admin", "--name", "ada",
                   db=db)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    assert key.startswith("tk_") and "shown once" in made.stdout
    listed = _tether("keys", "list", db=db)
    assert "tenant=acme  role=admin  name=ada  active" in listed.stdout
    # the secret is everything after `tk_<id>_` (token_urlsafe may itself hold "_": splitting
    # at the last one could leave a single character, found in any listing)
    secret = key.split("_", 2)[2]
    assert len(secret) >= 40 and key not in listed.stdout and secret not in listed.stdout
    key_id = key.split("_")[1]
    assert _tether("keys", "revoke", key_id, db=db).returncode == 0
    again = _tether("keys", "revoke", key_id, db=db)
    assert again.returncode == 1 and "no active key" in again.stderr
    bad = _tether("keys", "create", "--tenant", "acme", "--role", "god", db=db)
    assert bad.returncode == 2 and "unknown role 'god'" in bad.stderr


@pytest.mark.parametrize("args", [["--tenant", "a b", "--role", "viewer"],
                                  ["--tenant", "acme", "--role", "god"],
                                  ["--tenant", "acme", "--role", "approver"]])
def test_a_bad_key_request_creates_no_database(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "new.db"
    bad = _tether("keys", "create", *args, db=db)
    assert bad.returncode == 2 and "error:" in bad.stderr and "created it" not in bad.stderr
    assert not db.exists()


def test_a_revoked_key_is_refused_by_the_server(tmp_path: Path) -> None:
    with S.running(tmp_path) as api:
        assert api.client.get("/v1/me", headers=api.as_("operator")).status_code == 200
        t = Tether(tmp_path / "tether.db")
        keys = ApiKeys(t.store)
        [olga] = [p for p in keys.list("acme") if p.name == "olga"]
        keys.revoke(olga.key_id)
        t.close()
        r = api.client.get("/v1/me", headers=api.as_("operator"))
        assert r.status_code == 401 and "revoked" in r.json()["message"]
