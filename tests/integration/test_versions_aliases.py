"""Versions and aliases: publish, immutability, qualifiers, weighted routing."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import invoke_json, make_zip, python_function, unique
from shapes import assert_shape


def code(value: str) -> str:
    return (
        f"def handler(e, c):\n    return {{'v': {value!r}, 'ver': c.function_version, "
        "'arn': c.invoked_function_arn}\n"
    )


def error_code(exc) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def fn(lam):
    name = unique("ver")
    python_function(lam, name, code("one"))
    return name


def test_publish_version_freezes_code(lam, fn):
    v1 = lam.publish_version(FunctionName=fn, Description="first")
    assert_shape("lambda", "PublishVersion", v1)
    assert v1["Version"] == "1" and v1["FunctionArn"].endswith(f":{fn}:1")
    lam.update_function_code(FunctionName=fn, ZipFile=make_zip({"app.py": code("two")}))
    assert invoke_json(lam, fn)[0]["v"] == "two"
    body, resp = invoke_json(lam, fn, Qualifier="1")
    assert body["v"] == "one" and body["ver"] == "1"
    assert resp["ExecutedVersion"] == "1"
    assert invoke_json(lam, f"{fn}:1")[0]["v"] == "one"
    assert lam.get_function(FunctionName=fn, Qualifier="1")["Configuration"]["Version"] == "1"


def test_publishing_unchanged_latest_returns_the_same_version(lam, fn):
    assert lam.publish_version(FunctionName=fn)["Version"] == "1"
    assert lam.publish_version(FunctionName=fn)["Version"] == "1"
    lam.update_function_configuration(FunctionName=fn, Timeout=9)
    assert lam.publish_version(FunctionName=fn)["Version"] == "2"


def test_publish_with_wrong_code_sha_is_refused(lam, fn):
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=fn, CodeSha256="bogus")
    assert error_code(exc) == ("InvalidParameterValueException", 400)


def test_list_versions_includes_latest_and_paginates(lam, fn):
    for i in range(3):
        lam.update_function_configuration(FunctionName=fn, Timeout=3 + i)
        lam.publish_version(FunctionName=fn)
    pages = list(
        lam.get_paginator("list_versions_by_function").paginate(
            FunctionName=fn, PaginationConfig={"PageSize": 2}
        )
    )
    for page in pages:
        assert_shape("lambda", "ListVersionsByFunction", page)
    versions = [v["Version"] for p in pages for v in p["Versions"]]
    assert versions == ["$LATEST", "1", "2", "3"]


def test_alias_crud_and_invoke(lam, fn):
    lam.publish_version(FunctionName=fn)
    alias = lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1", Description="prod")
    assert_shape("lambda", "CreateAlias", alias)
    assert alias["AliasArn"].endswith(f":{fn}:live")
    body, resp = invoke_json(lam, fn, Qualifier="live")
    assert resp["ExecutedVersion"] == "1"
    assert body["arn"].endswith(f":{fn}:live")
    got = lam.get_alias(FunctionName=fn, Name="live")
    assert_shape("lambda", "GetAlias", got)
    assert got["FunctionVersion"] == "1"
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    assert error_code(exc) == ("ResourceConflictException", 409)
    listed = lam.list_aliases(FunctionName=fn)
    assert_shape("lambda", "ListAliases", listed)
    assert [a["Name"] for a in listed["Aliases"]] == ["live"]
    lam.delete_alias(FunctionName=fn, Name="live")
    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName=fn, Name="live")
    assert error_code(exc) == ("ResourceNotFoundException", 404)


def test_alias_to_missing_version_is_not_found(lam, fn):
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=fn, Name="x", FunctionVersion="9")
    assert error_code(exc) == ("ResourceNotFoundException", 404)


def test_invoke_unknown_alias_or_version_is_not_found(lam, fn):
    for q in ("nope", "42"):
        with pytest.raises(ClientError) as exc:
            lam.invoke(FunctionName=fn, Qualifier=q)
        assert error_code(exc) == ("ResourceNotFoundException", 404)


def test_alias_routing_splits_traffic_by_weight(lam, fn):
    lam.publish_version(FunctionName=fn)
    lam.update_function_code(FunctionName=fn, ZipFile=make_zip({"app.py": code("two")}))
    lam.publish_version(FunctionName=fn)
    lam.create_alias(
        FunctionName=fn,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    seen = {"1": 0, "2": 0}
    for _ in range(60):
        _, resp = invoke_json(lam, fn, Qualifier="canary")
        seen[resp["ExecutedVersion"]] += 1
    assert seen["1"] > 10 and seen["2"] > 10, seen
    lam.update_alias(FunctionName=fn, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}})
    assert {invoke_json(lam, fn, Qualifier="canary")[1]["ExecutedVersion"] for _ in range(5)} == {
        "1"
    }


def test_routing_to_latest_is_refused(lam, fn):
    lam.publish_version(FunctionName=fn)
    with pytest.raises(ClientError) as exc:
        lam.create_alias(
            FunctionName=fn,
            Name="bad",
            FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )
    assert error_code(exc) == ("InvalidParameterValueException", 400)


def test_qualifier_disagreeing_with_name_is_refused(lam, fn):
    lam.publish_version(FunctionName=fn)
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"{fn}:1", Qualifier="$LATEST")
    assert error_code(exc) == ("InvalidParameterValueException", 400)


def test_delete_version_referenced_by_alias_is_a_conflict(lam, fn):
    lam.publish_version(FunctionName=fn)
    lam.create_alias(FunctionName=fn, Name="a", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=fn, Qualifier="1")
    assert error_code(exc) == ("ResourceConflictException", 409)
    lam.delete_alias(FunctionName=fn, Name="a")
    lam.delete_function(FunctionName=fn, Qualifier="1")
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn, Qualifier="1")
    assert error_code(exc) == ("ResourceNotFoundException", 404)
