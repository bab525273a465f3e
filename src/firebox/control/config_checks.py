"""Checking a function's configuration and code as Lambda does: every parameter's range,
pattern and limit, with the error Lambda gives for each."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from firebox.arn import parse_layer_version_arn
from firebox.control.catalog import LAYER, version_key
from firebox.errors import ValidationError
from firebox.messages import (
    ENV_RESERVED_KEYS,
    ENV_TOO_LARGE,
    HANDLER_REQUIRED,
    IMAGE_UNSUPPORTED,
    LAYER_OTHER_REGION,
    LAYER_TWICE,
    LAYER_VERSION_MISSING,
    NO_CODE,
    RUNTIME_INVALID,
    RUNTIME_UNAVAILABLE,
    S3_CODE_UNSUPPORTED,
    TOO_MANY_LAYERS,
    UNZIP_FAILED,
    ZIPPED_TOO_LARGE,
)
from firebox.runtime.runtimes import KNOWN_RUNTIMES, available_runtimes, missing_hint
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
        raise RUNTIME_INVALID(
            runtime="null" if runtime is None else runtime,
            runtimes=", ".join(sorted(available_runtimes())),
        )
    if runtime not in available_runtimes():
        hint = missing_hint(runtime)
        raise RUNTIME_UNAVAILABLE(
            runtime=runtime,
            hint=f" ({hint})" if hint else "",
            runtimes=", ".join(sorted(available_runtimes())),
        )


def validate_config(store: MetadataStore, params: Doc, creating: bool, region: str) -> Doc:
    """Lambda's own checks on the configuration parameters present (their shapes, lengths
    and patterns were checked against the model at the edge); return them as stored."""
    out: Doc = {}
    if "Runtime" in params or creating:
        if params.get("PackageType", "Zip") == "Zip" or "Runtime" in params:
            check_runtime(params.get("Runtime"))
        out["Runtime"] = params.get("Runtime")
    if "Handler" in params or creating:
        if params.get("Handler") is None:
            raise HANDLER_REQUIRED()
        out["Handler"] = params["Handler"]
    if "Role" in params:
        out["Role"] = params["Role"]
    # Lambda's limits for a function (the model allows more, for other kinds of compute).
    memory = int_in(params, "MemorySize", "memorySize", 128, 10240)
    if memory is not None:
        out["MemorySize"] = memory
    timeout = int_in(params, "Timeout", "timeout", 1, 900)
    if timeout is not None:
        out["Timeout"] = timeout
    if "Description" in params:
        out["Description"] = params["Description"] or ""
    if "Environment" in params:
        out["Environment"] = {"Variables": check_env(params["Environment"])}
    if "EphemeralStorage" in params:
        size = int_in(params["EphemeralStorage"] or {}, "Size", "ephemeralStorage.size", 512, 10240)
        out["EphemeralStorage"] = {"Size": size or 512}
    if "Layers" in params:
        out["Layers"] = check_layers(store, params["Layers"] or [], region)
    if "Architectures" in params:
        out["Architectures"] = params["Architectures"]
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
    return out


def check_env(env: Doc | None) -> dict[str, str]:
    variables: dict[str, str] = (env or {}).get("Variables") or {}
    reserved = sorted(k for k in variables if k in RESERVED_ENV)
    if reserved:
        raise ENV_RESERVED_KEYS(keys=", ".join(reserved))
    # Lambda measures the variables as the JSON it stores them in.
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > MAX_ENV_BYTES:
        raise ENV_TOO_LARGE(measured=measured)
    return dict(variables)


def check_layers(store: MetadataStore, arns: list[str], region: str) -> list[Doc]:
    if len(arns) > MAX_LAYERS:
        raise TOO_MANY_LAYERS()
    out = []
    seen: dict[str, str] = {}
    for arn in arns:
        name, version = parse_layer_version_arn(arn)
        layer_region = arn.split(":")[3]
        if layer_region != region:
            raise LAYER_OTHER_REGION(region=region)
        base = arn.rsplit(":", 1)[0]
        if base in seen:
            raise LAYER_TWICE(first=seen[base], second=arn)
        seen[base] = arn
        doc = store.get(LAYER, version_key(name, version))
        if doc is None:
            raise LAYER_VERSION_MISSING(arn=arn)
        out.append({"Arn": arn, "CodeSize": doc["Content"]["CodeSize"], "_sha": doc["_sha"]})
    return out


def decode_zip(code: Doc) -> bytes:
    """The zip of a Code (or UpdateFunctionCode) parameter, base64-decoded."""
    if code.get("ImageUri"):
        raise IMAGE_UNSUPPORTED()
    if code.get("S3Bucket") or code.get("S3Key"):
        raise S3_CODE_UNSUPPORTED()
    raw = code.get("ZipFile")
    if not raw:
        raise NO_CODE()
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UNZIP_FAILED() from exc
    if len(data) > MAX_ZIP_BYTES:
        raise ZIPPED_TOO_LARGE(limit=MAX_ZIP_BYTES)
    return data
