"""Functions: create, read, update, delete, list; configuration validation; tags; concurrency."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from firebox.arn import LATEST, NAME_RE, parse_layer_version_arn
from firebox.control.catalog import (
    ALIAS,
    FUNCTION,
    LAYER,
    VERSION,
    Catalog,
    b64_sha256,
    check_revision,
    new_revision,
    now_iso,
    version_key,
)
from firebox.errors import (
    InvalidParameterValue,
    ResourceConflict,
    ValidationError,
)
from firebox.runtime.runtimes import KNOWN_RUNTIMES, available_runtimes
from firebox.store.metadata.base import Delete, DeletePrefix, Doc

ROLE_RE = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
HANDLER_RE = re.compile(r"^[^\s]+$")
ENV_KEY_RE = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_])+$")
# Variables Lambda sets itself and refuses to let a function override.
RESERVED_ENV = frozenset(
    "_HANDLER _X_AMZN_TRACE_ID AWS_DEFAULT_REGION AWS_REGION AWS_EXECUTION_ENV "
    "AWS_LAMBDA_FUNCTION_NAME AWS_LAMBDA_FUNCTION_MEMORY_SIZE AWS_LAMBDA_FUNCTION_VERSION "
    "AWS_LAMBDA_INITIALIZATION_TYPE AWS_LAMBDA_LOG_GROUP_NAME AWS_LAMBDA_LOG_STREAM_NAME "
    "AWS_ACCESS_KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN "
    "AWS_LAMBDA_RUNTIME_API LAMBDA_TASK_ROOT LAMBDA_RUNTIME_DIR".split()
)
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ENV_BYTES = 4096
MAX_LAYERS = 5

# Fields of a configuration that UpdateFunctionConfiguration may change.
_CONFIG_FIELDS = (
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "Runtime",
    "Layers",
    "EphemeralStorage",
    "TracingConfig",
    "DeadLetterConfig",
    "LoggingConfig",
    "KMSKeyArn",
    "VpcConfig",
    "FileSystemConfigs",
    "ImageConfig",
    "SnapStart",
)


def _range_error(field: str, value: Any, bound: str) -> ValidationError:
    return ValidationError(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: Member must have value {bound}"
    )


def _int_in(params: Doc, key: str, field: str, low: int, high: int) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{field}' "
            "failed to satisfy constraint: Member must be an integer"
        )
    if value < low:
        raise _range_error(field, value, f"greater than or equal to {low}")
    if value > high:
        raise _range_error(field, value, f"less than or equal to {high}")
    return value


class Functions:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    # --- validation -----------------------------------------------------------------

    def _check_runtime(self, runtime: Any) -> None:
        if runtime not in KNOWN_RUNTIMES:
            raise InvalidParameterValue(
                f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must "
                f"satisfy enum value set: [{', '.join(sorted(available_runtimes()))}] or be "
                "a valid ARN"
            )
        if runtime not in available_runtimes():
            raise InvalidParameterValue(
                f"The runtime parameter of {runtime} is not supported on this Firebox server. "
                f"Supported runtimes: {', '.join(sorted(available_runtimes()))}"
            )

    def _validate_config(self, params: Doc, creating: bool) -> Doc:
        """Check every configuration parameter present; return them in stored shape."""
        out: Doc = {}
        if "Runtime" in params or creating:
            if params.get("PackageType", "Zip") == "Zip" or "Runtime" in params:
                self._check_runtime(params.get("Runtime"))
            out["Runtime"] = params.get("Runtime")
        if "Handler" in params or creating:
            handler = params.get("Handler")
            if handler is None:
                raise InvalidParameterValue("Handler is required for Zip package type.")
            if not isinstance(handler, str) or len(handler) > 128 or not HANDLER_RE.match(handler):
                raise ValidationError(
                    f"1 validation error detected: Value '{handler}' at 'handler' failed to "
                    "satisfy constraint: Member must satisfy regular expression pattern: [^\\s]+"
                )
            out["Handler"] = handler
        if "Role" in params or creating:
            role = params.get("Role")
            if not isinstance(role, str) or not ROLE_RE.match(role):
                raise ValidationError(
                    f"1 validation error detected: Value '{role}' at 'role' failed to satisfy "
                    "constraint: Member must satisfy regular expression pattern: "
                    "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
                )
            out["Role"] = role
        memory = _int_in(params, "MemorySize", "memorySize", 128, 10240)
        if memory is not None:
            out["MemorySize"] = memory
        timeout = _int_in(params, "Timeout", "timeout", 1, 900)
        if timeout is not None:
            out["Timeout"] = timeout
        if "Description" in params:
            desc = params["Description"] or ""
            if not isinstance(desc, str) or len(desc) > 256:
                raise ValidationError(
                    "1 validation error detected: Value at 'description' failed to satisfy "
                    "constraint: Member must have length less than or equal to 256"
                )
            out["Description"] = desc
        if "Environment" in params:
            out["Environment"] = {"Variables": self._check_env(params["Environment"])}
        if "EphemeralStorage" in params:
            size = _int_in(
                params["EphemeralStorage"] or {}, "Size", "ephemeralStorage.size", 512, 10240
            )
            out["EphemeralStorage"] = {"Size": size or 512}
        if "Layers" in params:
            out["Layers"] = self._check_layers(params["Layers"] or [])
        if "Architectures" in params:
            arch = params["Architectures"]
            if not isinstance(arch, list) or len(arch) != 1 or arch[0] not in ("x86_64", "arm64"):
                raise ValidationError(
                    f"1 validation error detected: Value '{arch}' at 'architectures' failed "
                    "to satisfy constraint: Member must have length 1 and be one of "
                    "[x86_64, arm64]"
                )
            out["Architectures"] = arch
        for key in (
            "TracingConfig",
            "DeadLetterConfig",
            "LoggingConfig",
            "KMSKeyArn",
            "VpcConfig",
            "FileSystemConfigs",
            "ImageConfig",
            "SnapStart",
        ):
            if key in params:
                out[key] = params[key]
        if "DeadLetterConfig" in params:
            target = (params["DeadLetterConfig"] or {}).get("TargetArn")
            if target and not isinstance(target, str):
                raise InvalidParameterValue("DeadLetterConfig.TargetArn must be an ARN")
        return out

    def _check_env(self, env: Any) -> dict[str, str]:
        variables = (env or {}).get("Variables") or {}
        if not isinstance(variables, dict):
            raise InvalidParameterValue("Environment.Variables must be a map")
        reserved = sorted(k for k in variables if k in RESERVED_ENV)
        if reserved:
            raise InvalidParameterValue(
                "Lambda was unable to configure your environment variables because the "
                "environment variables you have provided contains reserved keys that are "
                "currently not supported for modification. Reserved keys used in this "
                f"request: {', '.join(reserved)}"
            )
        for key, value in variables.items():
            if not isinstance(key, str) or not ENV_KEY_RE.match(key):
                raise ValidationError(
                    "1 validation error detected: Value at 'environment.variables' failed to "
                    "satisfy constraint: Map keys must satisfy constraint: [Member must "
                    "satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
                )
            if not isinstance(value, str):
                raise InvalidParameterValue(f"Environment variable {key} must be a string")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
        if size > MAX_ENV_BYTES:
            raise InvalidParameterValue(
                "Lambda was unable to configure your environment variables because the "
                "environment variables you have provided exceeded the 4KB limit. String "
                f"measured: {size}"
            )
        return dict(variables)

    def _check_layers(self, arns: Any) -> list[Doc]:
        if not isinstance(arns, list):
            raise InvalidParameterValue("Layers must be a list of layer version ARNs")
        if len(arns) > MAX_LAYERS:
            raise InvalidParameterValue("Cannot reference more than 5 layers.")
        out = []
        for arn in arns:
            name, version = parse_layer_version_arn(str(arn))
            doc = self.c.store.get(LAYER, version_key(name, version))
            if doc is None:
                raise InvalidParameterValue(f"Layer version {arn} does not exist.")
            out.append({"Arn": arn, "CodeSize": doc["Content"]["CodeSize"], "_sha": doc["_sha"]})
        if len({layer["Arn"].rsplit(":", 1)[0] for layer in out}) != len(out):
            raise InvalidParameterValue(
                "Two different versions of the same layer are not allowed "
                "to be referenced in the same function."
            )
        return out

    def _decode_zip(self, code: Any) -> bytes:
        if not isinstance(code, dict):
            raise InvalidParameterValue("Code must be an object")
        if code.get("ImageUri"):
            raise InvalidParameterValue(
                "Container image functions are not supported by this Firebox server yet."
            )
        if code.get("S3Bucket") or code.get("S3Key"):
            raise InvalidParameterValue(
                "Code.S3Bucket is not supported: upload the package as Code.ZipFile."
            )
        raw = code.get("ZipFile")
        if not raw:
            raise InvalidParameterValue("Please provide a source for function code.")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidParameterValue(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
            ) from exc
        if len(data) > MAX_ZIP_BYTES:
            raise InvalidParameterValue(f"Unzipped size must be smaller than {MAX_ZIP_BYTES} bytes")
        return data

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
        checked = self._validate_config(params, creating=True)
        data = self._decode_zip(params.get("Code"))
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
        data = self._decode_zip({k: params.get(k) for k in ("ZipFile", "S3Bucket", "S3Key")})
        sha = self.c.code.put(data)
        with self.c.lock:
            doc = self.c.function_doc(name)
            config = doc["config"]
            check_revision(params.get("RevisionId"), config["RevisionId"])
            if "Architectures" in params:
                config["Architectures"] = self._validate_config(
                    {"Architectures": params["Architectures"]}, creating=False
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
            unknown = set(params) - set(_CONFIG_FIELDS) - {"RevisionId", "FunctionName"}
            if unknown:
                raise InvalidParameterValue(f"Unsupported parameters: {sorted(unknown)}")
            checked = self._validate_config(params, creating=False)
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

    def untag(self, resource: str, keys: Sequence[str]) -> None:
        name = self._tag_target(resource)
        with self.c.lock:
            doc = self.c.function_doc(name)
            for key in keys:
                doc.setdefault("tags", {}).pop(key, None)
            self.c.store.put(FUNCTION, name, doc)

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
