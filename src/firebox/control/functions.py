"""Functions: create, read, update, delete, list; tags; concurrency. (The checks on a
configuration are in config_checks.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from firebox.arn import LATEST, NAME_RE
from firebox.control.catalog import (
    ALIAS,
    FUNCTION,
    VERSION,
    Catalog,
    b64_sha256,
    check_revision,
    new_revision,
    now_iso,
    version_key,
)
from firebox.control.config_checks import CONFIG_FIELDS, MAX_ZIP_BYTES, decode_zip, validate_config
from firebox.errors import (
    InvalidParameterValue,
    ResourceConflict,
    ValidationError,
)
from firebox.store.metadata.base import Delete, DeletePrefix, Doc


class Functions:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    # --- shapes ---------------------------------------------------------------------

    def public_config(self, config: Doc) -> Doc:
        """The FunctionConfiguration shape, without our private members."""
        out = {k: v for k, v in config.items() if not k.startswith("_")}
        if "Layers" in out:
            out["Layers"] = [
                {k: v for k, v in layer.items() if not k.startswith("_")} for layer in out["Layers"]
            ]
        return out

    # --- operations -----------------------------------------------------------------

    def create(self, params: Doc) -> Doc:
        name = params.get("FunctionName")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationError(
                f"1 validation error detected: Value '{name}' at 'functionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            )
        if params.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValue(
                "Container image functions are not supported by this Firebox server yet."
            )
        if self.c.store.get(FUNCTION, name) is not None:
            raise ResourceConflict(f"Function already exist: {name}")
        checked = validate_config(self.c.store, params, creating=True)
        data = decode_zip(params.get("Code"))
        tags = params.get("Tags") or {}
        if not isinstance(tags, dict):
            raise InvalidParameterValue("Tags must be a map")
        sha = self.c.code.put(data)
        config: Doc = {
            "FunctionName": name,
            "FunctionArn": self.c.arn(name),
            "Runtime": checked["Runtime"],
            "Role": checked["Role"],
            "Handler": checked["Handler"],
            "CodeSize": len(data),
            "Description": checked.get("Description", ""),
            "Timeout": checked.get("Timeout", 3),
            "MemorySize": checked.get("MemorySize", 128),
            "LastModified": now_iso(),
            "CodeSha256": b64_sha256(sha),
            "Version": LATEST,
            "Environment": checked.get("Environment", {"Variables": {}}),
            "TracingConfig": checked.get("TracingConfig", {"Mode": "PassThrough"}),
            "RevisionId": new_revision(),
            "Layers": checked.get("Layers", []),
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": checked.get("Architectures", ["x86_64"]),
            "EphemeralStorage": checked.get("EphemeralStorage", {"Size": 512}),
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": checked.get(
                "LoggingConfig", {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
            ),
            "_sha": sha,
        }
        if "DeadLetterConfig" in checked:
            config["DeadLetterConfig"] = checked["DeadLetterConfig"]
        with self.c.lock:
            doc = {
                "config": config,
                "tags": dict(tags),
                "reserved": None,
                "last_version": 0,
                "created": now_iso(),
            }
            if not self.c.store.insert(FUNCTION, name, doc):
                raise ResourceConflict(f"Function already exist: {name}")
            self.c.changed(name)
        result = self.public_config(config)
        if params.get("Publish"):
            from firebox.control.versions import Versions

            result = Versions(self.c).publish(name, {})
        return result

    def get_config(self, name: str, qualifier: str | None) -> Doc:
        return self.public_config(self._config(name, qualifier))

    def _config(self, name: str, qualifier: str | None) -> Doc:
        doc = self.c.function_doc(name)
        if qualifier in (None, LATEST):
            return dict(doc["config"])
        if qualifier.isdigit():
            return dict(self.c.version_doc(name, qualifier)["config"])
        alias = self.c.alias_doc(name, qualifier)
        version = alias["FunctionVersion"]
        config = doc["config"] if version == LATEST else self.c.version_doc(name, version)["config"]
        config = dict(config)
        config["FunctionArn"] = self.c.arn(name, qualifier)
        return config

    def get(self, name: str, qualifier: str | None) -> Doc:
        doc = self.c.function_doc(name)
        config = self._config(name, qualifier)
        out: Doc = {
            "Configuration": self.public_config(config),
            "Code": {"RepositoryType": "S3", "Location": self.c.code_url(config["_sha"])},
        }
        if doc.get("tags"):
            out["Tags"] = dict(doc["tags"])
        if doc.get("reserved") is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": doc["reserved"]}
        return out

    def list(self, marker: str | None, max_items: int | None, all_versions: bool) -> Doc:
        limit = max_items if max_items and max_items > 0 else 50
        if limit > 10000:
            limit = 10000
        rows = self.c.store.list(FUNCTION, after=marker or None, limit=limit + 1)
        configs = [self.public_config(doc["config"]) for _, doc in rows[:limit]]
        if all_versions:
            for name, _ in rows[:limit]:
                configs.extend(
                    self.public_config(v["config"])
                    for _, v in self.c.store.list(VERSION, prefix=f"{name}/")
                )
        out: Doc = {"Functions": configs}
        if len(rows) > limit:
            out["NextMarker"] = rows[limit - 1][0]
        return out

    def update_code(self, name: str, params: Doc) -> Doc:
        if params.get("ImageUri"):
            raise InvalidParameterValue(
                "Container image functions are not supported by this Firebox server yet."
            )
        data = decode_zip({k: params.get(k) for k in ("ZipFile", "S3Bucket", "S3Key")})
        sha = self.c.code.put(data)
        with self.c.lock:
            doc = self.c.function_doc(name)
            config = doc["config"]
            check_revision(params.get("RevisionId"), config["RevisionId"])
            if "Architectures" in params:
                config["Architectures"] = validate_config(
                    self.c.store, {"Architectures": params["Architectures"]}, creating=False
                )["Architectures"]
            config.update(
                CodeSize=len(data),
                CodeSha256=b64_sha256(sha),
                _sha=sha,
                LastModified=now_iso(),
                RevisionId=new_revision(),
                LastUpdateStatus="Successful",
                State="Active",
            )
            self.c.store.put(FUNCTION, name, doc)
            self.c.changed(name)
        if params.get("Publish"):
            from firebox.control.versions import Versions

            return Versions(self.c).publish(name, {})
        return self.public_config(config)

    def update_config(self, name: str, params: Doc) -> Doc:
        with self.c.lock:
            doc = self.c.function_doc(name)
            config = doc["config"]
            check_revision(params.get("RevisionId"), config["RevisionId"])
            unknown = set(params) - set(CONFIG_FIELDS) - {"RevisionId", "FunctionName"}
            if unknown:
                raise InvalidParameterValue(f"Unsupported parameters: {sorted(unknown)}")
            checked = validate_config(self.c.store, params, creating=False)
            config.update(checked)
            config.update(
                LastModified=now_iso(),
                RevisionId=new_revision(),
                LastUpdateStatus="Successful",
                State="Active",
            )
            self.c.store.put(FUNCTION, name, doc)
            self.c.changed(name)
        return self.public_config(config)

    def delete(self, name: str, qualifier: str | None) -> None:
        with self.c.lock:
            self.c.function_doc(name)
            if qualifier is None:
                self.c.store.batch(
                    [
                        Delete(FUNCTION, name),
                        DeletePrefix(VERSION, f"{name}/"),
                        DeletePrefix(ALIAS, f"{name}/"),
                    ]
                )
                for hook in self.c.on_delete:
                    hook(name)
            else:
                if qualifier == LATEST:
                    raise InvalidParameterValue(
                        "$LATEST version cannot be deleted without deleting the function."
                    )
                if not qualifier.isdigit():
                    raise InvalidParameterValue(
                        "Deletion of aliases is not supported by DeleteFunction: use DeleteAlias."
                    )
                self.c.version_doc(name, qualifier)
                for _, alias in self.c.store.list(ALIAS, prefix=f"{name}/"):
                    weights = (alias.get("RoutingConfig") or {}).get(
                        "AdditionalVersionWeights"
                    ) or {}
                    if alias["FunctionVersion"] == qualifier or qualifier in weights:
                        raise ResourceConflict(
                            f"Unable to delete version because the following aliases reference "
                            f"it: [{alias['Name']}]"
                        )
                self.c.store.delete(VERSION, version_key(name, int(qualifier)))
            self.c.changed(name)

    # --- tags -----------------------------------------------------------------------

    def _tag_target(self, resource: str) -> str:
        from firebox.arn import parse_function_ref

        ref = parse_function_ref(resource)
        if not resource.startswith("arn:"):
            raise ValidationError(
                f"1 validation error detected: Value '{resource}' at "
                "'resource' failed to satisfy constraint: Member must be an ARN"
            )
        if ref.qualifier is not None:
            raise InvalidParameterValue("Tags are not supported on function versions or aliases.")
        return ref.name

    def tag(self, resource: str, tags: Doc) -> None:
        if not isinstance(tags, dict) or not tags:
            raise InvalidParameterValue("Tags must be a non-empty map")
        name = self._tag_target(resource)
        with self.c.lock:
            doc = self.c.function_doc(name)
            doc.setdefault("tags", {}).update(tags)
            if len(doc["tags"]) > 50:
                raise InvalidParameterValue("A function may have at most 50 tags.")
            self.c.store.put(FUNCTION, name, doc)
            # A tag can switch the function's network off (resolve.NETWORK_TAG).
            self.c.changed(name)

    def untag(self, resource: str, keys: Sequence[str]) -> None:
        name = self._tag_target(resource)
        with self.c.lock:
            doc = self.c.function_doc(name)
            for key in keys:
                doc.setdefault("tags", {}).pop(key, None)
            self.c.store.put(FUNCTION, name, doc)
            self.c.changed(name)

    def list_tags(self, resource: str) -> Doc:
        name = self._tag_target(resource)
        return {"Tags": dict(self.c.function_doc(name).get("tags") or {})}

    # --- concurrency ----------------------------------------------------------------

    def put_concurrency(self, name: str, reserved: Any) -> Doc:
        if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
            raise ValidationError(
                f"1 validation error detected: Value '{reserved}' at "
                "'reservedConcurrentExecutions' failed to satisfy constraint: Member must have "
                "value greater than or equal to 0"
            )
        with self.c.lock:
            doc = self.c.function_doc(name)
            others = sum(
                d.get("reserved") or 0 for n, d in self.c.store.list(FUNCTION) if n != name
            )
            s = self.c.settings
            if s.account_concurrency - others - reserved < s.min_unreserved_concurrency:
                raise InvalidParameterValue(
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    "UnreservedConcurrentExecution below its minimum value of "
                    f"[{s.min_unreserved_concurrency}]."
                )
            doc["reserved"] = reserved
            self.c.store.put(FUNCTION, name, doc)
            self.c.changed(name)
        return {"ReservedConcurrentExecutions": reserved}

    def get_concurrency(self, name: str) -> Doc:
        reserved = self.c.function_doc(name).get("reserved")
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    def delete_concurrency(self, name: str) -> None:
        with self.c.lock:
            doc = self.c.function_doc(name)
            doc["reserved"] = None
            self.c.store.put(FUNCTION, name, doc)
            self.c.changed(name)

    def reserved_by_function(self) -> dict[str, int]:
        return {
            n: d["reserved"]
            for n, d in self.c.store.list(FUNCTION)
            if d.get("reserved") is not None
        }

    def account_settings(self) -> Doc:
        functions = self.c.store.list(FUNCTION)
        reserved = sum(d.get("reserved") or 0 for _, d in functions)
        total_code = sum(d["config"]["CodeSize"] for _, d in functions)
        s = self.c.settings
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": MAX_ZIP_BYTES,
                "ConcurrentExecutions": s.account_concurrency,
                "UnreservedConcurrentExecutions": s.account_concurrency - reserved,
            },
            "AccountUsage": {"TotalCodeSize": total_code, "FunctionCount": len(functions)},
        }
