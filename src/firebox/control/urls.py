"""Function URL configs: Create/Get/Update/Delete/ListFunctionUrlConfigs.

Keys in the metadata store:
  url     {name}/{qualifier}     the config of the function ("" qualifier) or of an alias
  url-id  {url id}               {"name", "qualifier"}: the URL server's lookup

The URL id is 32 random lowercase letters and digits, as Lambda's; the URL itself points at
Firebox's URL server (settings.url_port).
"""

from __future__ import annotations

import asyncio
import secrets
import string
from typing import Any

from firebox.control.catalog import ALIAS, FUNCTION, Catalog, now_iso, paginate
from firebox.messages import RESOURCE_NOT_FOUND, URL_EXISTS, URL_FUNCTION_MISSING
from firebox.store.metadata.base import Delete, Doc, Put
from firebox.store.metadata.feed import Change

URL, URL_ID = "url", "url-id"

_ID_ALPHABET = string.ascii_lowercase + string.digits
_CORS_FIELDS = (
    "AllowCredentials",
    "AllowHeaders",
    "AllowMethods",
    "AllowOrigins",
    "ExposeHeaders",
    "MaxAge",
)


def _key(name: str, qualifier: str | None) -> str:
    return f"{name}/{qualifier or ''}"


def _cors(value: Doc | None) -> Doc | None:
    """The Cors members Firebox keeps (their types were checked against the model)."""
    if value is None:
        return None
    out: Doc = {k: value[k] for k in _CORS_FIELDS if value.get(k) is not None}
    return out


class FunctionUrls:
    def __init__(self, catalog: Catalog, base_url: Any) -> None:
        """``base_url(url_id)`` forms the public URL of a config."""
        self.c = catalog
        self.base_url = base_url
        # url id -> (name, qualifier, config); the URL server's hot path reads only this.
        self._by_id: dict[str, tuple[str, str | None, Doc]] = {}
        # Bumped whenever an entry is dropped: a lookup that raced with a write is not kept.
        self._changes = 0
        catalog.on_delete.append(self.drop_function)
        catalog.listeners.append(self.prune)

    def _check_target(self, name: str, qualifier: str | None) -> None:
        """The function and alias exist (the model's pattern for a URL's Qualifier has
        already refused $LATEST and version numbers)."""
        self.c.function_doc(name)
        if qualifier is not None:
            self.c.alias_doc(name, qualifier)

    def _public(self, doc: Doc, last_modified: bool = True) -> Doc:
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        if not last_modified:
            out.pop("LastModifiedTime", None)
        if "Cors" in out and not out["Cors"]:
            out.pop("Cors")
        return out

    def create(self, name: str, qualifier: str | None, params: Doc) -> Doc:
        auth = params["AuthType"]
        mode = params.get("InvokeMode") or "BUFFERED"
        cors = _cors(params.get("Cors"))
        with self.c.lock:
            self._check_target(name, qualifier)
            if self.c.store.get(URL, _key(name, qualifier)) is not None:
                raise URL_EXISTS(arn=self.c.arn(name, qualifier))
            url_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))
            now = now_iso()
            doc: Doc = {
                "FunctionUrl": self.base_url(url_id),
                "FunctionArn": self.c.arn(name, qualifier),
                "AuthType": auth,
                "CreationTime": now,
                "LastModifiedTime": now,
                "InvokeMode": mode,
                "_id": url_id,
            }
            if cors is not None:
                doc["Cors"] = cors
            self.c.store.batch(
                [
                    Put(URL, _key(name, qualifier), doc),
                    Put(URL_ID, url_id, {"name": name, "qualifier": qualifier}),
                ]
            )
            self._forget(url_id)
        return self._public(doc, last_modified=False)

    def get(self, name: str, qualifier: str | None) -> Doc:
        self._check_target(name, qualifier)
        doc = self.c.store.get(URL, _key(name, qualifier))
        if doc is None:
            raise RESOURCE_NOT_FOUND()
        return self._public(doc)

    def update(self, name: str, qualifier: str | None, params: Doc) -> Doc:
        with self.c.lock:
            self._check_target(name, qualifier)
            doc = self.c.store.get(URL, _key(name, qualifier))
            if doc is None:
                raise RESOURCE_NOT_FOUND()
            if params.get("AuthType") is not None:
                doc["AuthType"] = params["AuthType"]
            if params.get("InvokeMode") is not None:
                doc["InvokeMode"] = params["InvokeMode"]
            if "Cors" in params:
                cors = _cors(params["Cors"])
                doc.pop("Cors", None)
                if cors is not None:
                    doc["Cors"] = cors
            doc["LastModifiedTime"] = now_iso()
            self.c.store.put(URL, _key(name, qualifier), doc)
            self._forget(doc["_id"])
        return self._public(doc)

    def delete(self, name: str, qualifier: str | None) -> None:
        with self.c.lock:
            self._check_target(name, qualifier)
            doc = self.c.store.get(URL, _key(name, qualifier))
            if doc is None:
                raise RESOURCE_NOT_FOUND()
            self.c.store.batch([Delete(URL, _key(name, qualifier)), Delete(URL_ID, doc["_id"])])
            self._forget(doc["_id"])

    def list(self, name: str, marker: str | None, max_items: int | None) -> Doc:
        if self.c.store.get(FUNCTION, name) is None:
            raise URL_FUNCTION_MISSING()
        docs = [d for _, d in self.c.store.list(URL, prefix=f"{name}/")]
        page, next_marker = paginate(docs, marker, max_items, lambda d: d["FunctionArn"])
        out: Doc = {"FunctionUrlConfigs": [self._public(d) for d in page]}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def drop_function(self, name: str) -> None:
        """catalog.on_delete hook: the function's URLs go with it."""
        writes: list[Put | Delete] = []
        for key, doc in self.c.store.list(URL, prefix=f"{name}/"):
            writes += [Delete(URL, key), Delete(URL_ID, doc["_id"])]
            self._forget(doc["_id"])
        if writes:
            self.c.store.batch(writes)

    def prune(self, name: str) -> None:
        """catalog.listeners hook: an alias that went away takes its URL with it."""
        for key, doc in self.c.store.list(URL, prefix=f"{name}/"):
            alias = key.split("/", 1)[1]
            if alias and self.c.store.get(ALIAS, f"{name}/{alias}") is None:
                self.c.store.batch([Delete(URL, key), Delete(URL_ID, doc["_id"])])
                self._forget(doc["_id"])

    def on_change(self, change: Change) -> None:
        """A write anywhere in the fleet (the metadata store's change feed)."""
        if not change.kind or (change.kind == URL_ID and change.prefix):
            for url_id in list(self._by_id):
                self._forget(url_id)
        elif change.kind == URL_ID:
            self._forget(change.key)
        elif change.kind == URL:
            for url_id, (name, qualifier, _) in list(self._by_id.items()):
                if change.covers(URL, _key(name, qualifier)):
                    self._forget(url_id)

    def _forget(self, url_id: str) -> None:
        self._changes += 1
        self._by_id.pop(url_id, None)

    async def lookup(self, url_id: str) -> tuple[str, str | None, Doc] | None:
        """(function, qualifier, config) for a URL id: from memory after the first hit, the
        first read in a worker thread (it serves on the event loop)."""
        hit = self._by_id.get(url_id)
        if hit is not None:
            return hit
        if len(url_id) != 32 or not url_id.isalnum():
            return None
        return await asyncio.to_thread(self._load, url_id)

    def _load(self, url_id: str) -> tuple[str, str | None, Doc] | None:
        changes = self._changes
        index = self.c.store.get(URL_ID, url_id)
        if index is None:
            return None
        doc = self.c.store.get(URL, _key(index["name"], index["qualifier"]))
        if doc is None:
            return None
        hit = (index["name"], index["qualifier"], doc)
        if changes == self._changes:
            self._by_id[url_id] = hit
        return hit
