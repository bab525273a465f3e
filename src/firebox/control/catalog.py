"""What every control-plane module shares: the stores, the settings and the write lock.

Keys in the metadata store (lexical order is listing order):
  function  {name}                         the function, its $LATEST config, tags, limits
  version   {name}/{version:010d}           a published version (immutable)
  alias     {name}/{alias}
  layer     {layer}/{version:010d}
  event_invoke_config {name}/{qualifier}  retries, max age, destinations (event_invoke.py)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from firebox.arn import function_arn
from firebox.messages import FUNCTION_NOT_FOUND, REVISION_MISMATCH, Message
from firebox.settings import Settings
from firebox.store.code.base import CodeStore
from firebox.store.metadata.base import Doc, MetadataStore

FUNCTION, VERSION, ALIAS, LAYER = "function", "version", "alias", "layer"


def version_key(name: str, version: int) -> str:
    return f"{name}/{version:010d}"


def now_iso() -> str:
    """Lambda's LastModified format: 2024-01-31T12:00:00.000+0000."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def new_revision() -> str:
    return str(uuid.uuid4())


def b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ControlLock:
    """Serialises the control plane's read-modify-write sequences: between this process's
    threads (an RLock) and, through the metadata store's lock, between every process that
    shares the store. Re-entrant: only the outermost ``with`` takes the store's lock."""

    def __init__(self, store_lock: Callable[[], contextlib.AbstractContextManager[None]]):
        self._local = threading.RLock()
        self._store_lock = store_lock
        self._depth = 0
        self._held: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> ControlLock:
        self._local.acquire()
        if self._depth == 0:
            held = self._store_lock()
            try:
                held.__enter__()
            except BaseException:
                self._local.release()
                raise
            self._held = held
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._held is not None:
                held, self._held = self._held, None
                held.__exit__(None, None, None)
        finally:
            self._local.release()


class Catalog:
    """Shared state of the control plane. Writers hold ``lock`` across read-modify-write."""

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        code: CodeStore,
        code_url: Callable[[str], str],
    ) -> None:
        self.settings = settings
        self.store = store
        self.code = code
        self.code_url = code_url
        self.lock = ControlLock(store.lock)
        # Called with a function name after any change to it (caches, warm environments).
        self.listeners: list[Callable[[str], None]] = []
        # Called with a function's name after the whole function is deleted, so that what
        # hangs off it elsewhere (event invoke configs, URLs, policies …) goes too.
        self.on_delete: list[Callable[[str], None]] = []

    def changed(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)

    def arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.settings.region, self.settings.account_id, name, qualifier)

    def function_doc(self, name: str, qualifier: str | None = None) -> Doc:
        """The function; ResourceNotFound naming ``qualifier`` too when the operation was
        asked about one (Lambda names what it was asked for)."""
        doc = self.store.get(FUNCTION, name)
        if doc is None:
            raise FUNCTION_NOT_FOUND(arn=self.arn(name, qualifier))
        return doc

    def version_doc(self, name: str, version: str) -> Doc:
        doc = (
            self.store.get(VERSION, version_key(name, int(version))) if version.isdigit() else None
        )
        if doc is None:
            raise FUNCTION_NOT_FOUND(arn=self.arn(name, version))
        return doc

    def alias_doc(self, name: str, alias: str, missing: Message = FUNCTION_NOT_FOUND) -> Doc:
        """The alias; a missing one is reported as ``missing`` of the alias's ARN (most
        operations say "Function not found: <arn>:<alias>")."""
        doc = self.store.get(ALIAS, f"{name}/{alias}")
        if doc is None:
            raise missing(arn=self.arn(name, alias))
        return doc


def check_revision(
    expected: str | None, actual: str, mismatch: Message = REVISION_MISMATCH
) -> None:
    if expected is not None and expected != actual:
        raise mismatch()


def paginate(
    items: list[Any], marker: str | None, max_items: int | None, key: Callable[[Any], str]
) -> tuple[list[Any], str | None]:
    """Cut a sorted list at an opaque marker (the key of the last item returned)."""
    if marker:
        items = [i for i in items if key(i) > marker]
    limit = max_items if max_items and max_items > 0 else 50
    page = items[:limit]
    next_marker = key(page[-1]) if len(items) > limit else None
    return page, next_marker
