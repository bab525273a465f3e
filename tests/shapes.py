"""Check responses against botocore's service models instead of a copy of our own.

botocore's parser drops members it does not know and coerces what it can, so a check on
boto3's parsed dict cannot see a stray or misspelt member, a number sent as a string or a
header-bound member left in the body. ``raw_problems`` reads the raw HTTP body instead;
``install`` hooks it into a boto3 client (botocore's ``before-parse`` event) so that every
response the client receives is checked, and ``assert_shape`` remains for a parsed dict.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

_session = botocore.session.get_session()

# Members every JSON error body may carry whatever its shape (botocore and the stricter
# SDKs read the code from `__type`/`code` and the message from either spelling).
_ERROR_ENVELOPE = frozenset({"__type", "code", "message", "Message"})
# Where a member of a response lives when it is not in the body.
_OUT_OF_BODY = frozenset({"header", "headers", "statusCode"})

# Problems seen by installed hooks since the last `take_problems()`: a test that swallows
# the AssertionError the hook raises still fails in conftest's autouse fixture.
_seen: list[str] = []


def take_problems() -> list[str]:
    """The problems every installed hook found since the last call, and forget them."""
    found = _seen[:]
    _seen.clear()
    return found


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_value(shape: Shape, value: Any, path: str, protocol: str) -> list[str]:
    """Problems of one JSON value against a shape (recursively)."""
    kind = shape.type_name
    if value is None:
        return [f"{path}: null where botocore's {shape.name} ({kind}) is expected"]
    if kind == "structure":
        if shape.is_document_type:
            return []
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({shape.name}), got {_type_name(value)}"]
        return _check_structure(shape, value, path, protocol, in_body=True)
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list ({shape.name}), got {_type_name(value)}"]
        problems: list[str] = []
        for i, item in enumerate(value):
            problems += _check_value(shape.member, item, f"{path}[{i}]", protocol)
        return problems
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map ({shape.name}), got {_type_name(value)}"]
        problems = []
        for key, item in value.items():
            problems += _check_value(shape.key, key, f"{path}<key {key!r}>", protocol)
            problems += _check_value(shape.value, item, f"{path}[{key!r}]", protocol)
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string ({shape.name}), got {_type_name(value)}"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} not in enum {shape.name} {sorted(shape.enum)}"]
        return []
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer ({shape.name}), got {_type_name(value)}"]
        return []
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected a number ({shape.name}), got {_type_name(value)}"]
        return []
    if kind == "boolean":
        if not isinstance(value, bool):
            return [f"{path}: expected a boolean ({shape.name}), got {_type_name(value)}"]
        return []
    if kind == "timestamp":
        return _check_timestamp(shape, value, path)
    if kind == "blob":
        if not isinstance(value, str):
            return [f"{path}: expected base64 text ({shape.name}), got {_type_name(value)}"]
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return [f"{path}: not base64 ({shape.name})"]
        return []
    return [f"{path}: botocore type {kind!r} of {shape.name} is not checked here"]


def _check_timestamp(shape: Shape, value: Any, path: str) -> list[str]:
    # The JSON protocols send epoch seconds unless the shape names another format.
    fmt = shape.serialization.get("timestampFormat", "unixTimestamp")
    if fmt == "unixTimestamp":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected epoch seconds ({shape.name}), got {_type_name(value)}"]
        return []
    if not isinstance(value, str):
        return [f"{path}: expected a {fmt} timestamp ({shape.name}), got {_type_name(value)}"]
    try:
        if fmt == "iso8601":
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            datetime.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        return [f"{path}: {value!r} is not a {fmt} timestamp ({shape.name})"]
    return []


def _check_structure(
    shape: StructureShape, value: dict[str, Any], path: str, protocol: str, in_body: bool
) -> list[str]:
    problems: list[str] = []
    for key, item in value.items():
        member = shape.members.get(key)
        if member is None:
            problems.append(f"{path}.{key}: not a member of botocore's {shape.name}")
            continue
        location = member.serialization.get("location")
        if in_body and protocol == "rest-json" and location in _OUT_OF_BODY:
            problems.append(f"{path}.{key}: bound to the {location}, not expected in the body")
            continue
        problems += _check_value(member, item, f"{path}.{key}", protocol)
    for name in shape.required_members:
        location = shape.members[name].serialization.get("location")
        if name not in value and not (protocol == "rest-json" and location in _OUT_OF_BODY):
            problems.append(f"{path}.{name}: required by botocore's {shape.name}, missing")
    if shape.is_tagged_union and len(value) > 1:
        problems.append(f"{path}: union {shape.name} has {len(value)} members set")
    return problems


def _check_headers(shape: StructureShape, headers: Mapping[str, str], path: str) -> list[str]:
    """Required header-bound members of a rest-json output are present."""
    lowered = {k.lower() for k in headers}
    problems = []
    for name in shape.required_members:
        ser = shape.members[name].serialization
        if ser.get("location") == "header" and ser.get("name", name).lower() not in lowered:
            problems.append(f"{path}.{name}: required header {ser.get('name')} missing")
    return problems


def _error_shapes(model: ServiceModel) -> dict[str, StructureShape]:
    shapes: dict[str, StructureShape] = {}
    for shape in model.error_shapes:
        code = shape.metadata.get("error", {}).get("code", shape.name)
        shapes[code] = shape
        shapes[shape.name] = shape
    return shapes


def _error_code(protocol: str, headers: Mapping[str, str], body: dict[str, Any]) -> str:
    raw = ""
    if protocol == "rest-json":
        raw = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    raw = raw or str(body.get("__type") or body.get("code") or "")
    return raw.split(":")[0].split("#")[-1]


def _check_error(
    model: ServiceModel, protocol: str, headers: Mapping[str, str], body: bytes, path: str
) -> list[str]:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return [f"{path}: error body is not JSON: {body[:80]!r}"]
    if not isinstance(data, dict):
        return [f"{path}: error body is not a JSON object: {body[:80]!r}"]
    code = _error_code(protocol, headers, data)
    if not code:
        return [f"{path}: error without a code (x-amzn-ErrorType or __type)"]
    path = f"{path}<{code}>"
    problems = [
        f"{path}.{key}: expected a string, got {_type_name(data[key])}"
        for key in ("__type", "code", "message", "Message")
        if key in data and not isinstance(data[key], str)
    ]
    shape = _error_shapes(model).get(code)
    if shape is None:
        # Not a modelled error (AWS's common ones: UnrecognizedClientException, ...): every
        # SDK reads only the code and message of those, whatever else the body holds.
        return problems
    rest = {k: v for k, v in data.items() if k not in _ERROR_ENVELOPE}
    return problems + _check_structure(shape, rest, path, protocol, in_body=True)


def raw_problems(
    operation: OperationModel, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    """What a raw response body gets wrong against the operation's model (empty if nothing).

    Streaming outputs (Invoke's Payload, event streams) are not read here; error bodies are
    checked against the error shape their code names.
    """
    model = operation.service_model
    protocol = model.protocol
    path = f"{model.service_name}.{operation.name}"
    if status >= 300:
        return _check_error(model, protocol, headers, body, path)
    if operation.has_streaming_output or operation.has_event_stream_output:
        return []
    shape = operation.output_shape
    if shape is not None and protocol == "rest-json":
        problems = _check_headers(shape, headers, path)
        payload = shape.serialization.get("payload")
        if payload:
            target = shape.members[payload]
            if target.type_name != "structure" or not body:
                return problems  # a raw blob or string payload
            shape, path = target, f"{path}.{payload}"
    else:
        problems = []
    if not body.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(body)
        except ValueError:
            return problems + [f"{path}: body is not JSON: {body[:80]!r}"]
    if shape is None:
        if data not in ({}, None):
            problems.append(f"{path}: the operation has no output, the body is {body[:80]!r}")
        return problems
    if not isinstance(data, dict):
        return problems + [f"{path}: expected an object, got {_type_name(data)}"]
    return problems + _check_structure(shape, data, path, protocol, in_body=True)


def _before_parse(operation_model: OperationModel, response_dict: dict[str, Any], **_: Any) -> None:
    status = response_dict["status_code"]
    body = response_dict["body"]
    if not isinstance(body, bytes):
        return  # a stream (event stream, streaming blob): read by the caller, not here
    problems = raw_problems(operation_model, status, response_dict["headers"], body)
    if problems:
        _seen.extend(problems)
        raise AssertionError("response does not match botocore's model:\n" + "\n".join(problems))


def install(client: Any) -> Any:
    """Check every response ``client`` receives against its service model; returns it."""
    client.meta.events.register("before-parse", _before_parse, unique_id="firebox-shapes")
    return client


def _check(shape: Any, value: Any, path: str) -> list[str]:
    problems: list[str] = []
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        for key, item in value.items():
            if key == "ResponseMetadata":
                continue
            if key not in shape.members:
                problems.append(f"{path}.{key}: not in botocore's {shape.name}")
                continue
            problems += _check(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        for i, item in enumerate(value):
            problems += _check(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        for k, item in value.items():
            problems += _check(shape.value, item, f"{path}[{k}]")
    elif shape.type_name == "string" and shape.enum and isinstance(value, str):
        if value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum {shape.name}")
    return problems


def assert_shape(service: str, operation: str, response: dict[str, Any]) -> None:
    """Every member of a parsed boto3 response exists in the operation's output shape.

    Clients made by conftest's ``Server.client`` check the raw body of every response
    already; this remains for the parsed view (enums, members after botocore's parsing).
    """
    model = _session.get_service_model(service).operation_model(operation)
    problems = _check(model.output_shape, response, operation) if model.output_shape else []
    assert not problems, "\n".join(problems)


def operation_model(service: str, operation: str) -> OperationModel:
    """botocore's model of one operation (for tests that send raw requests)."""
    return _session.get_service_model(service).operation_model(operation)
