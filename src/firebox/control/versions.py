"""Publishing versions: an immutable snapshot of $LATEST's code and configuration."""

from __future__ import annotations

from firebox.arn import LATEST
from firebox.control.catalog import (
    FUNCTION,
    VERSION,
    Catalog,
    check_revision,
    new_revision,
    now_iso,
    paginate,
    version_key,
)
from firebox.messages import CODE_SHA_MISMATCH
from firebox.store.metadata.base import Doc, Put

# What makes two versions the same: a publish of an unchanged $LATEST returns the last
# version instead of creating a new one, as Lambda does.
_IDENTITY = (
    "CodeSha256",
    "Runtime",
    "Handler",
    "Role",
    "MemorySize",
    "Timeout",
    "Environment",
    "Layers",
    "EphemeralStorage",
    "Architectures",
    "DeadLetterConfig",
)


class Versions:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def publish(self, name: str, params: Doc) -> Doc:
        from firebox.control.functions import Functions

        with self.c.lock:
            doc = self.c.function_doc(name)
            latest = doc["config"]
            check_revision(params.get("RevisionId"), latest["RevisionId"])
            want = params.get("CodeSha256")
            if want and want != latest["CodeSha256"]:
                raise CODE_SHA_MISMATCH(given=want, current=latest["CodeSha256"])
            if doc["last_version"]:
                last = self.c.store.get(VERSION, version_key(name, doc["last_version"]))
                if last and all(last["config"].get(k) == latest.get(k) for k in _IDENTITY):
                    return Functions(self.c).public_config(last["config"])
            number = doc["last_version"] + 1
            config = dict(latest)
            config.update(
                Version=str(number),
                FunctionArn=self.c.arn(name, str(number)),
                Description=params.get("Description", latest.get("Description", "")),
                LastModified=now_iso(),
                RevisionId=new_revision(),
            )
            doc["last_version"] = number
            # $LATEST's revision changes too when a version is published from it.
            latest["RevisionId"] = new_revision()
            self.c.store.batch(
                [
                    Put(VERSION, version_key(name, number), {"config": config}),
                    Put(FUNCTION, name, doc),
                ]
            )
            self.c.changed(name)
        return Functions(self.c).public_config(config)

    def list(self, name: str, marker: str | None, max_items: int | None) -> Doc:
        from firebox.control.functions import Functions

        fns = Functions(self.c)
        doc = self.c.function_doc(name)
        configs = [fns.public_config(doc["config"])]
        configs += [
            fns.public_config(v["config"]) for _, v in self.c.store.list(VERSION, prefix=f"{name}/")
        ]

        def key(c: Doc) -> str:
            return "0" if c["Version"] == LATEST else f"1{int(c['Version']):010d}"

        page, next_marker = paginate(configs, marker, max_items, key)
        out: Doc = {"Versions": page}
        if next_marker:
            out["NextMarker"] = next_marker
        return out


def assert_version_exists(catalog: Catalog, name: str, version: str) -> None:
    """ResourceNotFound unless the function has this version ($LATEST or a number)."""
    if version == LATEST:
        catalog.function_doc(name)
    else:
        catalog.version_doc(name, version)
