import pytest

from firebox.arn import parse_function_ref, parse_layer_version_arn
from firebox.errors import InvalidParameterValue, ResourceNotFound, ValidationError


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


@pytest.mark.parametrize("bad", ["", "bad name", "fn:bad qualifier", "x" * 257])
def test_malformed_names_are_validation_errors(bad):
    with pytest.raises(ValidationError):
        parse_function_ref(bad)


@pytest.mark.parametrize(
    "ref", ["a" * 65, "arn:aws:lambda:us-east-1:000000000000:function:" + "b" * 65]
)
def test_a_name_over_64_characters_is_lambdas_own_invalid_parameter(ref):
    with pytest.raises(InvalidParameterValue) as exc:
        parse_function_ref(ref)
    assert exc.value.message == (
        f"1 validation error detected: Value '{ref}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64"
    )


def test_an_arn_of_another_region_is_not_found_here():
    with pytest.raises(ResourceNotFound) as exc:
        parse_function_ref(
            "arn:aws:lambda:ap-southeast-1:000000000000:function:f", None, "us-east-1"
        )
    assert exc.value.message == (
        "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')"
    )


def test_layer_version_arn():
    assert parse_layer_version_arn("arn:aws:lambda:us-east-1:000000000000:layer:lib:3") == (
        "lib",
        3,
    )
    with pytest.raises(InvalidParameterValue):
        parse_layer_version_arn("arn:aws:lambda:us-east-1:000000000000:layer:lib")
