"""AWS event-stream framing (application/vnd.amazon.eventstream), the encoding side.

Each message: total length and headers length (uint32 big-endian), a CRC32 of those
eight bytes, the headers, the payload, and a CRC32 of everything before it. Headers here
are all strings (type 7): name length (uint8), name, 7, value length (uint16), value.
botocore.eventstream decodes it.
"""

from __future__ import annotations

import struct
import zlib


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(
        struct.pack("!B", len(n := name.encode()))
        + n
        + b"\x07"
        + struct.pack("!H", len(v := value.encode()))
        + v
        for name, value in headers.items()
    )
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, payload: bytes, content_type: str) -> bytes:
    """One event of an event stream (what botocore's EventStream yields as a dict)."""
    return encode_message(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"},
        payload,
    )
