"""Parse and format Lambda ARNs, function names and qualifiers ($LATEST, versions, aliases)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firebox.errors import ValidationError
from firebox.messages import (
    FUNCTION_NAME_TOO_LONG,
    FUNCTION_OTHER_REGION,
    LAYER_VERSION_ARN_INVALID,
    QUALIFIER_MISMATCH,
)

LATEST = "$LATEST"

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ALIAS_RE = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}$")
VERSION_RE = re.compile(r"^[0-9]+$")
QUALIFIER_RE = re.compile(r"^(\$LATEST|[a-zA-Z0-9_-]{1,128})$")
LAYER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,140}$")

# botocore's pattern for FunctionName (NamespacedFunctionName): name, partial ARN or full ARN,
# each with an optional qualifier.
FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
_FUNCTION_REF_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:"
    r"(?P<region>(?:eusc-)?[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?"
    r"(?P<name>[a-zA-Z0-9_.-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_LAYER_VERSION_ARN_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9_-]+):(?P<version>[0-9]+)$"
)


@dataclass(frozen=True, slots=True)
class FunctionRef:
    name: str
    qualifier: str | None


def parse_function_ref(
    ref: str, qualifier: str | None = None, region: str | None = None
) -> FunctionRef:
    """Split a FunctionName (name, partial or full ARN) and an explicit Qualifier.

    Raises ValidationError for a malformed name, InvalidParameterValue for a name over 64
    characters or a qualifier that disagrees with the name's own, and ResourceNotFound for
    an ARN of another region than ``region`` (the server's), as Lambda does.
    """
    if not ref or len(ref) > 256:
        raise ValidationError(
            f"1 validation error detected: Value '{ref}' at 'functionName' failed to satisfy "
            "constraint: Member must have length less than or equal to 256"
        )
    m = _FUNCTION_REF_RE.match(ref)
    if m is None:
        raise ValidationError(
            f"1 validation error detected: Value '{ref}' at 'functionName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"
        )
    if len(m["name"]) > 64:
        raise FUNCTION_NAME_TOO_LONG(value=ref)
    if region is not None and m["region"] is not None and m["region"] != region:
        raise FUNCTION_OTHER_REGION(region=m["region"], here=region)
    own = m["qualifier"]
    if qualifier is not None and qualifier != "":
        if not QUALIFIER_RE.match(qualifier):
            raise ValidationError(
                f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "(|[a-zA-Z0-9$_-]+)"
            )
        if own is not None and own != qualifier:
            raise QUALIFIER_MISMATCH()
        own = qualifier
    return FunctionRef(m["name"], own)


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def layer_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:layer:{name}"


def parse_layer_version_arn(arn: str) -> tuple[str, int]:
    """Return (layer name, version) of a layer version ARN; InvalidParameterValue if malformed."""
    m = _LAYER_VERSION_ARN_RE.match(arn)
    if m is None:
        raise LAYER_VERSION_ARN_INVALID(arn=arn)
    return m["name"], int(m["version"])


def parse_layer_name(name_or_arn: str) -> str:
    """A LayerName parameter may be a name or a layer ARN."""
    m = re.match(
        r"^arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(?:-gov)?-[a-z]+-\d:\d{12}:layer:([a-zA-Z0-9_-]+)$",
        name_or_arn,
    )
    name = m.group(1) if m else name_or_arn
    if not LAYER_NAME_RE.match(name):
        raise ValidationError(
            f"1 validation error detected: Value '{name_or_arn}' at 'layerName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
        )
    return name
