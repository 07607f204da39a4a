"""Confined file access under a root directory: every component opened with O_NOFOLLOW.

The runtime reads and writes workspaces the sandboxed code controlled; a symlink or ``..`` planted
there must never make the (privileged) runtime touch a file outside. So paths are validated
lexically and then opened one component at a time relative to a directory fd.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    pass


def check_relpath(path: str) -> list[str]:
    """Split a workspace-relative path; reject absolute paths, ``..``, empty parts and NULs."""
    if not isinstance(path, str) or not path or "\0" in path or path.startswith("/"):
        raise UnsafePath(f"not a relative workspace path: {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise UnsafePath(f"path escapes the workspace: {path!r}")
    return parts


def _open_parent(root_fd: int, parts: list[str], create: bool, mode: int = 0o755) -> int:
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, mode, dir_fd=fd)
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                raise UnsafePath(f"{'/'.join(parts)}: {name!r} is not a plain directory") from e
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def write_file(root: str, path: str, data: bytes, *, owner: tuple[int, int] | None = None) -> None:
    parts = check_relpath(path)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        pfd = _open_parent(root_fd, parts, create=True)
        try:
            if owner is not None:
                _chown_chain(root_fd, parts[:-1], owner)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafePath(f"{path}: exists and is not a regular file")
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=pfd,
            )
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafePath(f"{path}: not a regular file")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if owner is not None:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)
        finally:
            os.close(pfd)
    finally:
        os.close(root_fd)


def _chown_chain(root_fd: int, dirs: list[str], owner: tuple[int, int]) -> None:
    fd = os.dup(root_fd)
    try:
        for name in dirs:
            nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def delete_file(root: str, path: str) -> None:
    parts = check_relpath(path)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        pfd = _open_parent(root_fd, parts, create=False)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(parts[-1], dir_fd=pfd)
        finally:
            os.close(pfd)
    finally:
        os.close(root_fd)


def walk_files(
    root: str, *, max_files: int, max_file_bytes: int
) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Yield ``(relpath, data, problem)`` for each regular file, never following a symlink.

    Symlinks, devices, fifos and sockets are reported as problems and not read; so are files
    larger than ``max_file_bytes`` (data is None then). Stops after ``max_files`` entries.
    """
    count = 0
    root_fd = os.open(root, _DIR_FLAGS)
    stack: list[tuple[int, str]] = [(root_fd, "")]
    try:
        while stack:
            dfd, prefix = stack.pop()
            try:
                names = sorted(os.listdir(dfd))
                for name in names:
                    rel = prefix + name
                    try:
                        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append((os.open(name, _DIR_FLAGS, dir_fd=dfd), rel + "/"))
                        except OSError:
                            yield rel, None, "directory could not be opened"
                        continue
                    count += 1
                    if count > max_files:
                        yield rel, None, f"more than {max_files} files; the rest were not kept"
                        return
                    if not stat.S_ISREG(st.st_mode):
                        kind = "symlink" if stat.S_ISLNK(st.st_mode) else "special file"
                        yield rel, None, f"{kind} not kept"
                        continue
                    if st.st_size > max_file_bytes:
                        yield rel, None, f"file of {st.st_size} bytes exceeds the limit"
                        continue
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                                     | os.O_NONBLOCK, dir_fd=dfd)
                    except OSError as e:
                        yield rel, None, f"unreadable: {e.strerror}"
                        continue
                    try:
                        if not stat.S_ISREG(os.fstat(fd).st_mode):
                            yield rel, None, "special file not kept"
                            continue
                        chunks = []
                        left = max_file_bytes + 1
                        while left > 0:
                            b = os.read(fd, min(left, 1 << 20))
                            if not b:
                                break
                            chunks.append(b)
                            left -= len(b)
                        data = b"".join(chunks)
                    finally:
                        os.close(fd)
                    if len(data) > max_file_bytes:
                        yield rel, None, "file grew beyond the limit"
                        continue
                    yield rel, data, None
            finally:
                os.close(dfd)
    finally:
        for fd, _ in stack:
            with contextlib.suppress(OSError):
                os.close(fd)
