import pytest

from firebox.arn import parse_function_ref, parse_layer_version_arn
from firebox.errors import InvalidParameterValue, ValidationError


@pytest.mark.parametrize(
    ("ref", "qualifier", "expected"),
    [
        ("fn", None, ("fn", None)),
        ("fn:1", None, ("fn", "1")),
        ("fn:live", None, ("fn", "live")),
        ("fn", "$LATEST", ("fn", "$LATEST")),
        ("123456789012:function:fn", None, ("fn", None)),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn", None, ("fn", None)),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn:7", None, ("fn", "7")),
        ("arn:aws:lambda:us-east-1:123456789012:function:fn:7", "7", ("fn", "7")),
    ],
)
def test_function_refs(ref, qualifier, expected):
    parsed = parse_function_ref(ref, qualifier)
    assert (parsed.name, parsed.qualifier) == expected


def test_conflicting_qualifiers_are_refused():
    with pytest.raises(InvalidParameterValue):
        parse_function_ref("fn:1", "2")


@pytest.mark.parametrize("bad", ["", "bad name", "a" * 65, "fn:bad qualifier", "x" * 171])
def test_malformed_names_are_validation_errors(bad):
    with pytest.raises(ValidationError):
        parse_function_ref(bad)


def test_layer_version_arn():
    assert parse_layer_version_arn("arn:aws:lambda:us-east-1:000000000000:layer:lib:3") == (
        "lib",
        3,
    )
    with pytest.raises(InvalidParameterValue):
        parse_layer_version_arn("arn:aws:lambda:us-east-1:000000000000:layer:lib")
