"""Aliases: named pointers to a version, optionally splitting traffic with a second one."""

from __future__ import annotations

from firebox.arn import LATEST
from firebox.control.catalog import ALIAS, Catalog, check_revision, new_revision, paginate
from firebox.control.versions import assert_version_exists
from firebox.messages import (
    ALIAS_ARN_NOT_FOUND,
    ALIAS_EXISTS,
    ALIAS_NOT_FOUND,
    ROUTING_LATEST,
    ROUTING_SAME_VERSION,
    ROUTING_TOO_MANY,
)
from firebox.store.metadata.base import Doc


class Aliases:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def _check_routing(self, name: str, primary: str, routing: Doc | None) -> Doc | None:
        """Lambda's checks on a RoutingConfig (weights and version keys were checked
        against the model at the edge)."""
        weights: dict[str, float] = (routing or {}).get("AdditionalVersionWeights") or {}
        if not weights:
            return None
        if len(weights) > 1:
            raise ROUTING_TOO_MANY()
        for version in weights:
            if primary == LATEST:
                raise ROUTING_LATEST()
            if version == primary:
                raise ROUTING_SAME_VERSION(version=version)
            assert_version_exists(self.c, name, version)
        return {"AdditionalVersionWeights": {k: float(v) for k, v in weights.items()}}

    def _shape(self, doc: Doc) -> Doc:
        return {k: v for k, v in doc.items() if v is not None}

    def create(self, name: str, params: Doc) -> Doc:
        alias = params["Name"]
        version = params["FunctionVersion"]
        with self.c.lock:
            # Lambda names the version it was asked to point at.
            self.c.function_doc(name, version)
            assert_version_exists(self.c, name, version)
            routing = self._check_routing(name, version, params.get("RoutingConfig"))
            doc = {
                "AliasArn": self.c.arn(name, alias),
                "Name": alias,
                "FunctionVersion": version,
                "Description": params.get("Description", ""),
                "RevisionId": new_revision(),
            }
            if routing:
                doc["RoutingConfig"] = routing
            if not self.c.store.insert(ALIAS, f"{name}/{alias}", doc):
                raise ALIAS_EXISTS(arn=self.c.arn(name, alias))
            self.c.changed(name)
        return self._shape(doc)

    def get(self, name: str, alias: str) -> Doc:
        self.c.function_doc(name)
        return self._shape(self.c.alias_doc(name, alias, ALIAS_ARN_NOT_FOUND))

    def update(self, name: str, alias: str, params: Doc) -> Doc:
        with self.c.lock:
            self.c.function_doc(name)
            doc = self.c.alias_doc(name, alias, ALIAS_NOT_FOUND)
            check_revision(params.get("RevisionId"), doc["RevisionId"])
            if params.get("FunctionVersion") is not None:
                version = params["FunctionVersion"]
                assert_version_exists(self.c, name, version)
                doc["FunctionVersion"] = version
            if "Description" in params:
                doc["Description"] = params["Description"] or ""
            if "RoutingConfig" in params:
                routing = self._check_routing(name, doc["FunctionVersion"], params["RoutingConfig"])
                doc.pop("RoutingConfig", None)
                if routing:
                    doc["RoutingConfig"] = routing
            elif doc.get("RoutingConfig"):
                self._check_routing(name, doc["FunctionVersion"], doc["RoutingConfig"])
            doc["RevisionId"] = new_revision()
            self.c.store.put(ALIAS, f"{name}/{alias}", doc)
            self.c.changed(name)
        return self._shape(doc)

    def delete(self, name: str, alias: str) -> None:
        with self.c.lock:
            self.c.function_doc(name)
            self.c.store.delete(ALIAS, f"{name}/{alias}")
            self.c.changed(name)

    def list(
        self, name: str, version: str | None, marker: str | None, max_items: int | None
    ) -> Doc:
        self.c.function_doc(name)
        docs = [d for _, d in self.c.store.list(ALIAS, prefix=f"{name}/")]
        if version:
            docs = [d for d in docs if d["FunctionVersion"] == version]
        page, next_marker = paginate(docs, marker, max_items, lambda d: d["Name"])
        out: Doc = {"Aliases": [self._shape(d) for d in page]}
        if next_marker:
            out["NextMarker"] = next_marker
        return out
