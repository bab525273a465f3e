"""Check responses against botocore's service models instead of a copy of our own."""

from __future__ import annotations

from typing import Any

import botocore.session

_session = botocore.session.get_session()


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
    """Every member of a parsed boto3 response exists in the operation's output shape."""
    model = _session.get_service_model(service).operation_model(operation)
    problems = _check(model.output_shape, response, operation) if model.output_shape else []
    assert not problems, "\n".join(problems)
