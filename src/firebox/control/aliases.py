"""Aliases: named pointers to a version, optionally splitting traffic with a second one."""

from __future__ import annotations

from typing import Any

from firebox.arn import ALIAS_RE, LATEST
from firebox.control.catalog import ALIAS, Catalog, check_revision, new_revision, paginate
from firebox.control.versions import assert_version_exists
from firebox.errors import InvalidParameterValue, ResourceConflict, ValidationError
from firebox.store.metadata.base import Doc


class Aliases:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def _check_routing(self, name: str, primary: str, routing: Any) -> Doc | None:
        if not routing:
            return None
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        if not isinstance(weights, dict):
            raise InvalidParameterValue("RoutingConfig.AdditionalVersionWeights must be a map")
        if len(weights) > 1:
            raise InvalidParameterValue(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        for version, weight in weights.items():
            if not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
                raise ValidationError(
                    f"1 validation error detected: Value '{weight}' at "
                    "'routingConfig.additionalVersionWeights' failed to satisfy constraint: "
                    "Map value must satisfy constraint: [Member must have value less than or "
                    "equal to 1.0, Member must have value greater than or equal to 0.0]"
                )
            if primary == LATEST or version == LATEST:
                raise InvalidParameterValue(
                    "$LATEST is not supported for an alias pointing to more than 1 version"
                )
            if version == primary:
                raise InvalidParameterValue(
                    "Alias cannot point to the same version twice in the routing config"
                )
            assert_version_exists(self.c, name, str(version))
        return {"AdditionalVersionWeights": {str(k): float(v) for k, v in weights.items()}}

    def _shape(self, doc: Doc) -> Doc:
        return {k: v for k, v in doc.items() if v is not None}

    def create(self, name: str, params: Doc) -> Doc:
        alias = params.get("Name")
        if not isinstance(alias, str) or not ALIAS_RE.match(alias) or alias == LATEST:
            raise ValidationError(
                f"1 validation error detected: Value '{alias}' at 'name' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
            )
        version = str(params.get("FunctionVersion", ""))
        with self.c.lock:
            self.c.function_doc(name)
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
                raise ResourceConflict(f"Alias already exists: {self.c.arn(name, alias)}")
            self.c.changed(name)
        return self._shape(doc)

    def get(self, name: str, alias: str) -> Doc:
        self.c.function_doc(name)
        return self._shape(self.c.alias_doc(name, alias))

    def update(self, name: str, alias: str, params: Doc) -> Doc:
        with self.c.lock:
            self.c.function_doc(name)
            doc = self.c.alias_doc(name, alias)
            check_revision(params.get("RevisionId"), doc["RevisionId"])
            if params.get("FunctionVersion") is not None:
                version = str(params["FunctionVersion"])
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
