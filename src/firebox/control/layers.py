"""Layer versions: zips unpacked in order under /opt of every function that uses them."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from firebox.arn import layer_arn, parse_layer_version_arn
from firebox.control.catalog import LAYER, Catalog, b64_sha256, paginate, version_key
from firebox.messages import (
    LAYER_NO_CONTENT,
    LAYER_S3_UNSUPPORTED,
    LAYER_UNZIP_FAILED,
    LAYER_VERSION_BELOW_ONE,
    RESOURCE_NOT_FOUND,
)
from firebox.store.metadata.base import Doc


class Layers:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def _arn(self, name: str) -> str:
        return layer_arn(self.c.settings.region, self.c.settings.account_id, name)

    def _shape(self, doc: Doc, with_content: bool = True) -> Doc:
        out = {k: v for k, v in doc.items() if not k.startswith("_")}
        if with_content:
            out["Content"] = dict(doc["Content"], Location=self.c.code_url(doc["_sha"]))
        else:
            # A list item (LayerVersionsListItem) has neither the content nor the layer's ARN.
            out.pop("Content", None)
            out.pop("LayerArn", None)
        return out

    def publish(self, name: str, params: Doc) -> Doc:
        content = params.get("Content") or {}
        raw = content.get("ZipFile")
        if content.get("S3Bucket") or content.get("S3Key"):
            raise LAYER_S3_UNSUPPORTED()
        if not raw:
            raise LAYER_NO_CONTENT()
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LAYER_UNZIP_FAILED() from exc
        runtimes = params.get("CompatibleRuntimes") or []
        sha = self.c.code.put(data)
        with self.c.lock:
            number = self.c.store.next_counter(f"layer:{name}")
            arn = self._arn(name)
            doc: Doc = {
                "LayerArn": arn,
                "LayerVersionArn": f"{arn}:{number}",
                "Description": params.get("Description", ""),
                "CreatedDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
                "Version": number,
                "Content": {"CodeSha256": b64_sha256(sha), "CodeSize": len(data)},
                "CompatibleRuntimes": runtimes,
                "CompatibleArchitectures": params.get("CompatibleArchitectures") or [],
                "_sha": sha,
            }
            if params.get("LicenseInfo"):
                doc["LicenseInfo"] = params["LicenseInfo"]
            self.c.store.put(LAYER, version_key(name, number), doc)
        return self._shape(doc)

    def _doc(self, name: str, version: int) -> Doc:
        doc = self.c.store.get(LAYER, version_key(name, version))
        if doc is None:
            raise RESOURCE_NOT_FOUND()
        return doc

    def get(self, name: str, version: int) -> Doc:
        return self._shape(self._doc(name, _version_number(version)))

    def get_by_arn(self, arn: str) -> Doc:
        name, version = parse_layer_version_arn(arn)
        return self.get(name, version)

    def delete(self, name: str, version: int) -> None:
        # Deleting a version functions still use is allowed: they keep their copy (Lambda's
        # behaviour too); the package stays in the code store while referenced.
        self.c.store.delete(LAYER, version_key(name, _version_number(version)))

    def list_versions(
        self,
        name: str,
        runtime: str | None,
        arch: str | None,
        marker: str | None,
        max_items: int | None,
    ) -> Doc:
        docs = [d for _, d in self.c.store.list(LAYER, prefix=f"{name}/")]
        docs = [d for d in docs if _compatible(d, runtime, arch)]
        docs.sort(key=lambda d: -d["Version"])
        page, next_marker = paginate(
            docs, marker, max_items, lambda d: f"{10**10 - d['Version']:011d}"
        )
        out: Doc = {"LayerVersions": [self._shape(d, with_content=False) for d in page]}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def list_layers(
        self, runtime: str | None, arch: str | None, marker: str | None, max_items: int | None
    ) -> Doc:
        latest: dict[str, Doc] = {}
        for key, doc in self.c.store.list(LAYER):
            if _compatible(doc, runtime, arch):
                latest[key.split("/")[0]] = doc  # keys sort by version: the last one wins
        items = sorted(latest.items())
        page, next_marker = paginate(items, marker, max_items, lambda kv: kv[0])
        out: Doc = {
            "Layers": [
                {
                    "LayerName": n,
                    "LayerArn": d["LayerArn"],
                    "LatestMatchingVersion": self._shape(d, with_content=False),
                }
                for n, d in page
            ]
        }
        if next_marker:
            out["NextMarker"] = next_marker
        return out


def _version_number(version: int) -> int:
    if version < 1:
        raise LAYER_VERSION_BELOW_ONE()
    return version


def _compatible(doc: Doc, runtime: str | None, arch: str | None) -> bool:
    if runtime and runtime not in (doc.get("CompatibleRuntimes") or []):
        return False
    return not (arch and arch not in (doc.get("CompatibleArchitectures") or []))
