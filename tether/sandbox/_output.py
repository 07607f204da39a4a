"""Capped capture of a stream: keep the head and the tail, count everything, mark truncation."""

from __future__ import annotations


class CappedBuffer:
    """Keeps the first 3/4 of ``cap`` bytes and the last 1/4; the middle is dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head_cap = cap - cap // 4
        self.tail_cap = cap // 4
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_cap:
            self.tail += data
            if len(self.tail) > 2 * self.tail_cap:
                del self.tail[: len(self.tail) - self.tail_cap]

    @classmethod
    def from_file(cls, path: str, cap: int) -> CappedBuffer:
        """Head and tail of a file without reading the middle (it may be huge)."""
        import os
        import stat

        buf = cls(cap)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return buf
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # the sandbox may swap in a fifo or a device
                return buf
            size = st.st_size
            buf.head += os.pread(fd, buf.head_cap, 0)
            if size > buf.head_cap and buf.tail_cap:
                start = max(buf.head_cap, size - buf.tail_cap)
                buf.tail += os.pread(fd, size - start, start)
            buf.total = size
        finally:
            os.close(fd)
        return buf

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        """Decoded text; invalid UTF-8 becomes U+FFFD rather than an error."""
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        tail = bytes(self.tail[-self.tail_cap :]) if self.tail_cap else b""
        dropped = self.total - len(self.head) - len(tail)
        marker = f"\n[... tether: output truncated, {dropped} of {self.total} bytes omitted ...]\n"
        return (
            bytes(self.head).decode("utf-8", errors="replace")
            + marker
            + tail.decode("utf-8", errors="replace")
        )
