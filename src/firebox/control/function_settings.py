"""Per-function settings that change nothing about how a function runs here but that the
SDKs and infrastructure-as-code tools read and write with every function: code-signing
config, runtime management and recursive-loop detection."""

from __future__ import annotations

from typing import Any

from firebox.arn import LATEST
from firebox.control.catalog import FUNCTION, Catalog
from firebox.messages import (
    CODE_SIGNING_CONFIG_NOT_FOUND,
    RUNTIME_MANAGEMENT_ALIAS,
    RUNTIME_VERSION_ARN_REQUIRED,
    RUNTIME_VERSION_ARN_UNEXPECTED,
)
from firebox.store.metadata.base import Doc


class FunctionSettings:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def _update(self, name: str, key: str, value: Any) -> None:
        with self.c.lock:
            doc = self.c.function_doc(name)
            doc.setdefault("settings", {})[key] = value
            self.c.store.put(FUNCTION, name, doc)

    def _settings(self, name: str) -> Doc:
        return dict(self.c.function_doc(name).get("settings") or {})

    # --- code signing: no code-signing configs exist on this server ----------------------

    def get_code_signing(self, name: str) -> Doc:
        self.c.function_doc(name)
        return {"CodeSigningConfigArn": "", "FunctionName": name}

    def put_code_signing(self, name: str, arn: Any) -> Doc:
        self.c.function_doc(name)
        raise CODE_SIGNING_CONFIG_NOT_FOUND(arn=arn)

    def delete_code_signing(self, name: str) -> None:
        self.c.function_doc(name)

    # --- runtime management ------------------------------------------------------------

    def _runtime_qualifier(self, name: str, qualifier: str | None) -> str:
        q = qualifier or LATEST
        if q != LATEST:
            if not q.isdigit():
                raise RUNTIME_MANAGEMENT_ALIAS()
            self.c.version_doc(name, q)
        return q

    def get_runtime_management(self, name: str, qualifier: str | None) -> Doc:
        q = self._runtime_qualifier(name, qualifier)
        saved = (self._settings(name).get("runtime_management") or {}).get(q) or {}
        out: Doc = {
            "UpdateRuntimeOn": saved.get("UpdateRuntimeOn", "Auto"),
            "FunctionArn": self.c.arn(name, qualifier if qualifier else None),
        }
        if saved.get("RuntimeVersionArn"):
            out["RuntimeVersionArn"] = saved["RuntimeVersionArn"]
        return out

    def put_runtime_management(self, name: str, qualifier: str | None, params: Doc) -> Doc:
        q = self._runtime_qualifier(name, qualifier)
        mode = params["UpdateRuntimeOn"]
        version_arn = params.get("RuntimeVersionArn")
        if mode == "Manual" and not version_arn:
            raise RUNTIME_VERSION_ARN_REQUIRED()
        if mode != "Manual" and version_arn:
            raise RUNTIME_VERSION_ARN_UNEXPECTED()
        with self.c.lock:
            current = self._settings(name).get("runtime_management") or {}
            current[q] = {"UpdateRuntimeOn": mode, "RuntimeVersionArn": version_arn}
            self._update(name, "runtime_management", current)
        out: Doc = {"UpdateRuntimeOn": mode, "FunctionArn": self.c.arn(name, qualifier or None)}
        if version_arn:
            out["RuntimeVersionArn"] = version_arn
        return out

    # --- recursive loop detection ------------------------------------------------------------

    def get_recursion(self, name: str) -> Doc:
        return {"RecursiveLoop": self._settings(name).get("recursion", "Terminate")}

    def put_recursion(self, name: str, loop: str) -> Doc:
        self._update(name, "recursion", loop)
        return {"RecursiveLoop": loop}
