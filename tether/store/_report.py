"""`store_report`: what `tether doctor` says about a store, beyond "it opens".

Why: the conditions that degrade a healthy deployment without any error at first are cheaper
to catch before a run trips over them: a disk filling up under an SQLite journal (writes then
fail, and runs pause until there is room), a journal file other users can read (made before
Tether made new ones private), a host whose clock is far off the PostgreSQL server's (runs stay
safe, as leases and timers are read by the server's clock, but what the host logs and shows
will not line up with the journal)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
from typing import Any

from ._base import Store

#: below this much free space next to an SQLite journal, doctor warns
LOW_DISK_BYTES = 256 * 1024 * 1024
#: beyond this offset between this host's clock and the PostgreSQL server's, doctor warns
CLOCK_OFFSET_WARN_S = 1.0


def store_report(store: Store) -> dict[str, Any]:
    """Backend, location, schema version and the conditions above, with `warnings` (each a
    sentence that says what to do)."""
    report: dict[str, Any] = {"where": store.url, "schema_version": store.schema_version()}
    warnings: list[str] = []
    measure = getattr(store, "clock_offset", None)
    if callable(measure):
        offset = float(measure())
        report.update(backend="postgres", clock_offset_s=round(offset, 4))
        if abs(offset) > CLOCK_OFFSET_WARN_S:
            warnings.append(
                f"this host's clock is {abs(offset):.1f}s {'behind' if offset > 0 else 'ahead of'}"
                " the PostgreSQL server's: leases and timers use the server's clock, so runs are "
                "safe, but times this host logs will not match the journal's; sync the clock "
                "(NTP, e.g. chrony or systemd-timesyncd)")
    else:
        directory = os.path.dirname(os.path.abspath(str(getattr(store, "path", "."))))
        free = shutil.disk_usage(directory).free
        report.update(backend="sqlite", free_bytes=free)
        path = str(getattr(store, "path", ""))
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                warnings.append(
                    f"{path} is readable by other users (mode {mode:04o}): the journal holds "
                    "what tools returned and models said; make it private with "
                    f"`chmod 600 {shlex.quote(path)}` (its -wal and -shm files too)")
        if free < LOW_DISK_BYTES:
            warnings.append(
                f"only {free / 2**20:.0f} MiB free in {directory}: when the disk fills, writes "
                "fail and runs pause until there is room again; free space or move the "
                "database (--db, TETHER_DB)")
    report["warnings"] = warnings
    return report
