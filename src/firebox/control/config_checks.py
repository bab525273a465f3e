"""Checking a function's configuration and code as Lambda does: every parameter's range,
pattern and limit, with the error Lambda gives for each."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from firebox.arn import parse_layer_version_arn
from firebox.control.catalog import LAYER, version_key
from firebox.errors import InvalidParameterValue, ValidationError
from firebox.runtime.runtimes import KNOWN_RUNTIMES, available_runtimes
from firebox.store.metadata.base import Doc, MetadataStore

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
CONFIG_FIELDS = (
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


def range_error(field: str, value: Any, bound: str) -> ValidationError:
    return ValidationError(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: Member must have value {bound}"
    )


def int_in(params: Doc, key: str, field: str, low: int, high: int) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{field}' "
            "failed to satisfy constraint: Member must be an integer"
        )
    if value < low:
        raise range_error(field, value, f"greater than or equal to {low}")
    if value > high:
        raise range_error(field, value, f"less than or equal to {high}")
    return value


def check_runtime(runtime: Any) -> None:
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


def validate_config(store: MetadataStore, params: Doc, creating: bool) -> Doc:
    """Check every configuration parameter present; return them in stored shape."""
    out: Doc = {}
    if "Runtime" in params or creating:
        if params.get("PackageType", "Zip") == "Zip" or "Runtime" in params:
            check_runtime(params.get("Runtime"))
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
    memory = int_in(params, "MemorySize", "memorySize", 128, 10240)
    if memory is not None:
        out["MemorySize"] = memory
    timeout = int_in(params, "Timeout", "timeout", 1, 900)
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
        out["Environment"] = {"Variables": check_env(params["Environment"])}
    if "EphemeralStorage" in params:
        size = int_in(params["EphemeralStorage"] or {}, "Size", "ephemeralStorage.size", 512, 10240)
        out["EphemeralStorage"] = {"Size": size or 512}
    if "Layers" in params:
        out["Layers"] = check_layers(store, params["Layers"] or [])
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


def check_env(env: Any) -> dict[str, str]:
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


def check_layers(store: MetadataStore, arns: Any) -> list[Doc]:
    if not isinstance(arns, list):
        raise InvalidParameterValue("Layers must be a list of layer version ARNs")
    if len(arns) > MAX_LAYERS:
        raise InvalidParameterValue("Cannot reference more than 5 layers.")
    out = []
    for arn in arns:
        name, version = parse_layer_version_arn(str(arn))
        doc = store.get(LAYER, version_key(name, version))
        if doc is None:
            raise InvalidParameterValue(f"Layer version {arn} does not exist.")
        out.append({"Arn": arn, "CodeSize": doc["Content"]["CodeSize"], "_sha": doc["_sha"]})
    if len({layer["Arn"].rsplit(":", 1)[0] for layer in out}) != len(out):
        raise InvalidParameterValue(
            "Two different versions of the same layer are not allowed "
            "to be referenced in the same function."
        )
    return out


def decode_zip(code: Any) -> bytes:
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
