"""Resource-based policies: AddPermission, RemovePermission, GetPolicy as boto3 sees them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import python_function, unique

CODE = "def handler(event, context):\n    return event\n"


@pytest.fixture
def fn(lam: Any) -> str:
    name = unique("pol")
    python_function(lam, name, CODE)
    return name


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_add_get_remove_permission(lam: Any, fn: str) -> None:
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn)
    assert _code(exc) == "ResourceNotFoundException"

    out = lam.add_permission(
        FunctionName=fn,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::my-bucket",
        SourceAccount="000000000000",
    )
    stmt = json.loads(out["Statement"])
    assert stmt["Sid"] == "s3"
    assert stmt["Effect"] == "Allow"
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Resource"].endswith(f":function:{fn}")
    assert stmt["Condition"] == {
        "StringEquals": {"AWS:SourceAccount": "000000000000"},
        "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"},
    }
    lam.add_permission(
        FunctionName=fn,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    got = lam.get_policy(FunctionName=fn)
    policy = json.loads(got["Policy"])
    assert policy["Version"] == "2012-10-17"
    assert [s["Sid"] for s in policy["Statement"]] == ["s3", "url"]
    assert policy["Statement"][1]["Principal"] == "*"
    assert policy["Statement"][1]["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}
    }
    assert got["RevisionId"]

    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn,
            StatementId="s3",
            Action="lambda:InvokeFunction",
            Principal="sns.amazonaws.com",
        )
    assert _code(exc) == "ResourceConflictException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=fn, StatementId="s3", RevisionId="stale")
    assert _code(exc) == "PreconditionFailedException"
    lam.remove_permission(FunctionName=fn, StatementId="s3", RevisionId=got["RevisionId"])
    with pytest.raises(ClientError) as exc:
        lam.remove_permission(FunctionName=fn, StatementId="s3")
    assert _code(exc) == "ResourceNotFoundException"
    policy = json.loads(lam.get_policy(FunctionName=fn)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["url"]
    lam.remove_permission(FunctionName=fn, StatementId="url")
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn)
    assert _code(exc) == "ResourceNotFoundException"


def test_policy_per_qualifier(lam: Any, fn: str) -> None:
    version = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    lam.add_permission(
        FunctionName=fn,
        Qualifier="live",
        StatementId="a",
        Action="lambda:InvokeFunction",
        Principal="123456789012",
    )
    stmt = json.loads(lam.get_policy(FunctionName=fn, Qualifier="live")["Policy"])["Statement"][0]
    assert stmt["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert stmt["Resource"].endswith(f":function:{fn}:live")
    # A deleted alias takes its policy with it.
    lam.delete_alias(FunctionName=fn, Name="live")
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn, Qualifier="live")
    assert _code(exc) == "ResourceNotFoundException"
    # The unqualified function has its own (empty) policy.
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn,
            Qualifier="nope",
            StatementId="a",
            Action="lambda:InvokeFunction",
            Principal="*",
        )
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.add_permission(
            FunctionName=fn, StatementId="bad id!", Action="lambda:InvokeFunction", Principal="*"
        )
    # AWS's front door refuses what breaks the model's pattern for StatementId.
    assert _code(exc) == "ValidationException"


def test_policy_dropped_with_function(lam: Any, fn: str) -> None:
    lam.add_permission(
        FunctionName=fn,
        StatementId="x",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
    )
    lam.delete_function(FunctionName=fn)
    python_function(lam, fn, CODE)
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=unique("missing"))
    assert _code(exc) == "ResourceNotFoundException"
