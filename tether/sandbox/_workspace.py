"""The per-exec staging directory mounted at ``/workspace``, and the workspace manifest.

A workspace is a set of files (path -> bytes). Each exec gets a fresh staging directory (a
size-capped tmpfs when running as root, so a disk-filling program fills only its own quota),
populated from the manifest, bind-mounted read-write, then read back safely and thrown away.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tether.sandbox import _reaper as reaper
from tether.sandbox._fsafe import walk_files, write_file
from tether.sandbox._paths import state_dir
from tether.sandbox._rootfs import SANDBOX_GID, SANDBOX_UID
from tether.sandbox._types import FileChanges, Limits

_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mount_tmpfs(target: str, size: int, inodes: int, uid: int, gid: int) -> bool:
    opts = f"size={size},nr_inodes={inodes},mode=0755,uid={uid},gid={gid}".encode()
    rc = _libc.mount(b"tether-ws", target.encode(), b"tmpfs", 0x2 | 0x4, opts)
    return rc == 0  # MS_NOSUID | MS_NODEV


def _umount(target: str) -> None:
    _libc.umount2(target.encode(), _MNT_DETACH)


GC_INTERVAL = 300.0  # seconds between sweeps for what dead workers left behind
_collected: dict[str, float] = {}


def owner_alive(name: str) -> bool:
    """Entries are named ``<pid>-...`` after the worker process that created them."""
    pid, _, _ = name.partition("-")
    return pid.isdigit() and os.path.exists(f"/proc/{pid}")


def collect_stale(root: Path) -> list[str]:
    """Remove staging dirs left by dead workers (e.g. after SIGKILL): unmount, then delete."""
    removed = []
    for entry in os.listdir(root):
        if owner_alive(entry):
            continue
        path = str(root / entry)
        _umount(path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(entry)
    return removed


@dataclass
class Collected:
    manifest: dict[str, str]
    new_data: dict[str, bytes]
    changes: FileChanges
    problems: list[str] = field(default_factory=list)


class Staging:
    """One exec's workspace directory on the host."""

    def __init__(self, limits: Limits, size: int | None = None, kind: str = "ws") -> None:
        self.limits = limits
        self.root = state_dir() / kind
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root.parent, 0o755)
        os.chmod(self.root, 0o711)
        if time.monotonic() - _collected.get(kind, -GC_INTERVAL) >= GC_INTERVAL:
            _collected[kind] = time.monotonic()
            reaper.defer(lambda: collect_stale(self.root))
        self.path = self.root / f"{os.getpid()}-{uuid.uuid4().hex}"
        self.path.mkdir(mode=0o755)
        self.privileged = os.geteuid() == 0
        self.owner = (SANDBOX_UID, SANDBOX_GID) if self.privileged else None
        self.quota_enforced = False
        if self.privileged:
            self.quota_enforced = _mount_tmpfs(
                str(self.path),
                size or limits.workspace_bytes,
                limits.workspace_files + 64,
                SANDBOX_UID,
                SANDBOX_GID,
            )
            if not self.quota_enforced:
                os.chown(self.path, SANDBOX_UID, SANDBOX_GID)
        self.base: dict[str, str] = {}

    def materialize(self, files: dict[str, bytes]) -> None:
        for rel, data in sorted(files.items()):
            write_file(str(self.path), rel, data, owner=self.owner)
            self.base[rel] = digest(data)

    def collect(self) -> Collected:
        manifest: dict[str, str] = {}
        new: dict[str, bytes] = {}
        problems: list[str] = []
        changes = FileChanges()
        for rel, data, problem in walk_files(
            str(self.path),
            max_files=self.limits.workspace_files,
            max_file_bytes=self.limits.file_size_bytes,
        ):
            if problem is not None or data is None:
                problems.append(f"{rel}: {problem}")
                continue
            d = digest(data)
            manifest[rel] = d
            old = self.base.get(rel)
            if old != d:
                new[rel] = data
                (changes.added if old is None else changes.modified).append(rel)
        changes.deleted = sorted(set(self.base) - set(manifest))
        return Collected(manifest, new, changes, problems)

    def destroy(self) -> None:
        if self.quota_enforced:
            _umount(str(self.path))
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.path)


def load_dir(directory: Path, limits: Limits) -> dict[str, bytes]:
    """Read a host directory as workspace files (regular files only, symlinks ignored)."""
    out: dict[str, bytes] = {}
    for rel, data, _problem in walk_files(
        str(directory), max_files=limits.workspace_files, max_file_bytes=limits.file_size_bytes
    ):
        if data is not None:
            out[rel] = data
    return out
