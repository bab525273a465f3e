"""The code store interface: zip packages addressed by their SHA-256.

Packages are immutable; the same bytes uploaded twice are stored once. ``unpacked`` gives
a local, read-only directory tree of a package for the sandbox to mount at /var/task or
/opt, so a remote backend (S3) only has to download and unpack once per node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class CodeStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store a validated zip; return its SHA-256 hex digest. Raises InvalidParameterValue."""

    def get(self, sha256_hex: str) -> bytes:
        """The exact bytes stored; KeyError if absent."""

    def exists(self, sha256_hex: str) -> bool: ...

    def unpacked(self, sha256_hex: str) -> Path:
        """A local directory holding the package's files (unpacked on first use)."""

    def delete(self, sha256_hex: str) -> None:
        """Forget a package nobody refers to any more."""
