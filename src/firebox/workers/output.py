"""A function's stdout/stderr turned into log events, bounded in size and in volume.

A line is one event; a line longer than a CloudWatch event is cut into several, as a
CloudWatch event holds at most 256 KB (counted with 26 bytes of overhead per event).
What one invocation (or one Init phase) writes is capped: past the cap its output is
dropped, and the caller is told once so it can say so in a platform line. Nothing here
keeps more than one partial line.
"""

from __future__ import annotations

# CloudWatch Logs: an event is at most 256 KB, message bytes plus 26 bytes of overhead.
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES


def _cut(data: bytes | bytearray | memoryview, limit: int) -> int:
    """Where to cut ``data`` at most ``limit`` bytes in: not inside a UTF-8 character."""
    if len(data) <= limit:
        return len(data)
    at = limit
    # Back over at most three continuation bytes (0b10xxxxxx) to a character's start.
    while at > limit - 3 and data[at] & 0xC0 == 0x80:
        at -= 1
    return at if data[at] & 0xC0 != 0x80 else limit


class OutputLines:
    """Raw output in, log event messages out; at most ``cap_bytes`` (messages plus the
    per-event overhead) per period, a period being one invocation or the Init phase."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._partial = bytearray()
        self._used = 0
        # Set once the period's cap was reached: the rest of its output is dropped.
        self.dropping = False

    def new_period(self) -> None:
        """An invocation starts: its output is counted afresh."""
        self._used = 0
        self.dropping = False

    def feed(self, data: bytes) -> tuple[list[str], bool]:
        """The complete lines in ``data`` (with what was pending), and whether the cap was
        reached by this call (the caller then says so, once)."""
        if self.dropping:
            return [], False
        buf = self._partial
        buf += data
        lines = self._split(buf, final=False)
        return self._admit(lines)

    def flush(self) -> list[str]:
        """What is left of a last line without a newline (the output ended)."""
        if self.dropping or not self._partial:
            self._partial.clear()
            return []
        pieces = self._split(self._partial, final=True)
        return self._admit(pieces)[0]

    def drop_partial(self) -> None:
        self._partial.clear()

    @staticmethod
    def _split(buf: bytearray, final: bool) -> list[bytes]:
        """Take the complete lines (each cut into events) out of ``buf``; a last line
        without a newline stays unless ``final``, but never longer than an event."""
        lines: list[bytes] = []
        view = memoryview(buf)
        pos = 0
        try:
            while True:
                nl = buf.find(b"\n", pos)
                stop = len(buf) if nl < 0 else nl
                while stop - pos > MAX_EVENT_BYTES:
                    at = pos + _cut(view[pos : pos + MAX_EVENT_BYTES + 1], MAX_EVENT_BYTES)
                    lines.append(bytes(view[pos:at]))
                    pos = at
                if nl < 0:
                    if final and pos < len(buf):
                        lines.append(bytes(view[pos:]))
                        pos = len(buf)
                    break
                lines.append(bytes(view[pos:nl]))
                pos = nl + 1
        finally:
            view.release()
        del buf[:pos]
        return lines

    def _admit(self, lines: list[bytes]) -> tuple[list[str], bool]:
        out: list[str] = []
        for line in lines:
            cost = len(line) + EVENT_OVERHEAD_BYTES
            if self._used + cost > self.cap_bytes:
                self.dropping = True
                self._partial.clear()
                return out, True
            self._used += cost
            out.append(line.decode(errors="replace"))
        return out, False
