"""Write the sandbox's seccomp BPF program. Run by Debian's ``/usr/bin/python3`` (python3-seccomp).

Standalone on purpose: it runs under the system interpreter (which has the libseccomp binding),
not Tether's venv, at ``make`` time or on first use. Usage: ``python3 _seccomp_gen.py OUT.bpf``.
Default allow, then deny what a code-runner never needs and what widens the kernel's attack
surface: mounts, namespaces, tracing, keyrings, BPF, module and kexec loading, io_uring, etc.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

DENY_EPERM = [
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init", "lookup_dcookie",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "nfsservctl", "uselib", "_sysctl", "create_module",
    "get_kernel_syms", "query_module", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "mbind", "migrate_pages", "move_pages", "set_mempolicy",
]

CLONE_NS_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
ALLOWED_FAMILIES = {1, 2, 10, 16}  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


def build(out_path: str) -> None:
    import seccomp  # python3-seccomp

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in DENY_EPERM:
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            f.add_rule(eperm, name)  # fails only for a syscall unknown on this architecture
    # namespaces through clone(); clone3 passes flags in memory seccomp cannot read, so make it
    # look absent and libc falls back to clone().
    for bit in range(64):
        flag = 1 << bit
        if flag & CLONE_NS_FLAGS:
            f.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for fam in range(0, 64):
        if fam not in ALLOWED_FAMILIES:
            f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, fam))
    for req in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, req))
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as fh:
        f.export_bpf(fh)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_path)


if __name__ == "__main__":
    build(sys.argv[1])
