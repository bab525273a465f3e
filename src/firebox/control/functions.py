"""Functions: create, read, update, delete, list; tags; concurrency. (The checks on a
configuration are in config_checks.py.)"""

from __future__ import annotations

from collections.abc import Sequence

from firebox.arn import LATEST, parse_function_ref
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
from firebox.control.provisioned import PROVISIONED
from firebox.messages import (
    ALIAS_NOT_DELETABLE_HERE,
    FUNCTION_EXISTS,
    IMAGE_UNSUPPORTED,
    LATEST_NOT_DELETABLE,
    RESERVED_BELOW_MINIMUM,
    RESERVED_BELOW_PROVISIONED,
    RESOURCE_NOT_FOUND,
    TAGS_EMPTY,
    TAGS_ON_QUALIFIED,
    TAGS_TOO_MANY,
    UNSUPPORTED_PARAMETERS,
    VERSION_IN_USE,
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
        """CreateFunction; ``params`` were checked against the model's input shape."""
        # A full or partial ARN names the function too.
        name = parse_function_ref(params["FunctionName"], region=self.c.settings.region).name
        if params.get("PackageType", "Zip") != "Zip":
            raise IMAGE_UNSUPPORTED()
        if self.c.store.get(FUNCTION, name) is not None:
            raise FUNCTION_EXISTS(name=name)
        checked = validate_config(self.c.store, params, True, self.c.settings.region)
        data = decode_zip(params.get("Code") or {})
        tags = params.get("Tags") or {}
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
                raise FUNCTION_EXISTS(name=name)
            self.c.changed(name)
        result = self.public_config(config)
        if params.get("Publish"):
            from firebox.control.versions import Versions

            result = Versions(self.c).publish(name, {})
        return result

    def get_config(self, name: str, qualifier: str | None) -> Doc:
        return self.public_config(self._config(name, qualifier))

    def _config(self, name: str, qualifier: str | None) -> Doc:
        doc = self.c.function_doc(name, qualifier)
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
        doc = self.c.function_doc(name, qualifier)
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
            raise IMAGE_UNSUPPORTED()
        data = decode_zip(params)
        sha = self.c.code.put(data)
        with self.c.lock:
            doc = self.c.function_doc(name)
            config = doc["config"]
            check_revision(params.get("RevisionId"), config["RevisionId"])
            if "Architectures" in params:
                config["Architectures"] = params["Architectures"]
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
                raise UNSUPPORTED_PARAMETERS(names=sorted(unknown))
            checked = validate_config(self.c.store, params, False, self.c.settings.region)
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
        if qualifier == LATEST:
            # Lambda refuses this before it looks for the function.
            raise LATEST_NOT_DELETABLE()
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
                if not qualifier.isdigit():
                    raise ALIAS_NOT_DELETABLE_HERE()
                if self.c.store.get(VERSION, version_key(name, int(qualifier))) is None:
                    return  # Lambda: deleting a version that is not there succeeds
                for _, alias in self.c.store.list(ALIAS, prefix=f"{name}/"):
                    weights = (alias.get("RoutingConfig") or {}).get(
                        "AdditionalVersionWeights"
                    ) or {}
                    if alias["FunctionVersion"] == qualifier or qualifier in weights:
                        raise VERSION_IN_USE(aliases=alias["Name"])
                self.c.store.delete(VERSION, version_key(name, int(qualifier)))
            self.c.changed(name)

    # --- tags -----------------------------------------------------------------------

    def _tag_target(self, resource: str) -> str:
        """The function a taggable resource ARN names (the model has checked its form)."""
        if ":function:" not in resource:
            # An event source mapping or code-signing config ARN: none can exist here.
            raise RESOURCE_NOT_FOUND()
        ref = parse_function_ref(resource, region=self.c.settings.region)
        if ref.qualifier is not None:
            raise TAGS_ON_QUALIFIED()
        return ref.name

    def tag(self, resource: str, tags: Doc | None) -> None:
        name = self._tag_target(resource)
        if not tags:
            raise TAGS_EMPTY()
        with self.c.lock:
            doc = self.c.function_doc(name)
            merged = {**(doc.get("tags") or {}), **tags}
            if len(merged) > 50:
                raise TAGS_TOO_MANY()
            doc["tags"] = merged
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

    def put_concurrency(self, name: str, reserved: int) -> Doc:
        with self.c.lock:
            # Lambda names the function's $LATEST here, unlike most operations.
            doc = self.c.function_doc(name, LATEST)
            others = sum(
                d.get("reserved") or 0 for n, d in self.c.store.list(FUNCTION) if n != name
            )
            s = self.c.settings
            if s.account_concurrency - others - reserved < s.min_unreserved_concurrency:
                raise RESERVED_BELOW_MINIMUM(minimum=s.min_unreserved_concurrency)
            provisioned = sum(
                d["Requested"] for _, d in self.c.store.list(PROVISIONED, prefix=f"{name}/")
            )
            if reserved < provisioned:
                raise RESERVED_BELOW_PROVISIONED(reserved=reserved, provisioned=provisioned)
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
