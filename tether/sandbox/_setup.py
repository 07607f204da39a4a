"""``python -m tether.sandbox._setup``: build the sandbox's host-side pieces (run by ``make``).

Creates, under the sandbox home (``/opt/tether`` as root): a read-only Python virtual environment
from ``/usr/bin/python3`` with numpy and pandas, the seccomp filter (via python3-seccomp), and the
rootfs skeleton. Idempotent; everything world-readable, nothing world-writable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tether.sandbox._paths import python_env, rootfs, sandbox_home, seccomp_filter
from tether.sandbox._rootfs import ensure_rootfs

PACKAGES = ("numpy", "pandas")
SYSTEM_PYTHON = "/usr/bin/python3"


def build_seccomp(out: Path) -> None:
    gen = Path(__file__).with_name("_seccomp_gen.py")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([SYSTEM_PYTHON, str(gen), str(out)], check=True)


def build_env(env: Path, packages: tuple[str, ...] = PACKAGES) -> None:
    stamp = env / ".tether-env"
    want = " ".join(packages)
    if stamp.exists() and stamp.read_text() == want:
        return
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(env)], check=True)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv:
        cmd = [uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"), *packages]
    else:
        subprocess.run([str(env / "bin" / "python"), "-m", "ensurepip"], check=True)
        cmd = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", *packages]
    subprocess.run(cmd, check=True)
    # world-readable, never writable by the sandbox uid
    for dirpath, dirnames, filenames in os.walk(env):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                os.chmod(p, (mode | 0o444 | (0o111 if mode & 0o100 else 0)) & ~0o022)
    stamp.write_text(want)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-env", action="store_true", help="only seccomp filter and rootfs")
    args = ap.parse_args()
    home = sandbox_home()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o755)
    build_seccomp(seccomp_filter())
    ensure_rootfs(rootfs())
    if not args.skip_env:
        build_env(python_env())
    print(f"sandbox home ready: {home}")


if __name__ == "__main__":
    main()
