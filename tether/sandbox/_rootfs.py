"""The read-only skeleton root both backends mount: empty mount points, symlinks and a tiny /etc.

Nothing from the host's /etc is exposed: the sandbox sees only these few synthetic files.
"""

from __future__ import annotations

import os
from pathlib import Path

SANDBOX_UID = 65534
SANDBOX_GID = 65534

_ETC = {
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "sandbox:x:65534:65534:sandbox:/workspace:/bin/bash\n",
    "group": "root:x:0:\nsandbox:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    "resolv.conf": "",
}
_DIRS = ("usr", "tmp", "proc", "dev", "sys", "workspace", "etc", "opt", "run", "home")
_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
VERSION = "2"


def ensure_rootfs(root: Path) -> Path:
    """Create the skeleton once (idempotent); world-readable, owned by whoever runs setup."""
    stamp = root.parent / f".{root.name}-version"
    if stamp.exists() and stamp.read_text() == VERSION:
        return root
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for d in _DIRS:
        (root / d).mkdir(exist_ok=True)
        os.chmod(root / d, 0o755)
    for name, target in _LINKS.items():
        link = root / name
        if not link.is_symlink():
            link.symlink_to(target)
    (root / "etc" / "alternatives").mkdir(exist_ok=True)
    os.chmod(root / "etc" / "alternatives", 0o755)
    for name, text in _ETC.items():
        p = root / "etc" / name
        p.write_text(text)
        os.chmod(p, 0o644)
    stamp.write_text(VERSION)
    return root


def mount_point_for(root: Path, inside: str) -> None:
    """Make sure a mount point exists in the skeleton (gVisor needs it in the read-only root)."""
    p = root / inside.lstrip("/")
    if not p.exists():
        p.mkdir(parents=True, exist_ok=True)
