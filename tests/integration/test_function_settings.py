"""Settings that SDKs and IaC tools read and write with every function: code signing,
runtime management and recursive-loop detection."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import python_function, unique
from shapes import assert_shape

CODE = "def handler(e, c):\n    return 1\n"


def error_of(exc) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_code_signing_config_is_none_and_cannot_be_attached(lam):
    name = unique("csc")
    python_function(lam, name, CODE)
    got = lam.get_function_code_signing_config(FunctionName=name)
    assert_shape("lambda", "GetFunctionCodeSigningConfig", got)
    assert got["CodeSigningConfigArn"] == "" and got["FunctionName"] == name
    with pytest.raises(ClientError) as exc:
        lam.put_function_code_signing_config(
            FunctionName=name,
            CodeSigningConfigArn="arn:aws:lambda:us-east-1:000000000000:code-signing-config:csc-0123456789abcdef0",
        )
    assert error_of(exc) == ("CodeSigningConfigNotFoundException", 404)
    lam.delete_function_code_signing_config(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_code_signing_config(FunctionName=name + "-missing")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_runtime_management_per_version(lam):
    name = unique("rmc")
    python_function(lam, name, CODE)
    lam.publish_version(FunctionName=name)
    got = lam.get_runtime_management_config(FunctionName=name)
    assert_shape("lambda", "GetRuntimeManagementConfig", got)
    assert got["UpdateRuntimeOn"] == "Auto"
    put = lam.put_runtime_management_config(
        FunctionName=name, Qualifier="1", UpdateRuntimeOn="FunctionUpdate"
    )
    assert_shape("lambda", "PutRuntimeManagementConfig", put)
    assert put["FunctionArn"].endswith(f":{name}:1")
    assert (
        lam.get_runtime_management_config(FunctionName=name, Qualifier="1")["UpdateRuntimeOn"]
        == "FunctionUpdate"
    )
    assert lam.get_runtime_management_config(FunctionName=name)["UpdateRuntimeOn"] == "Auto"
    with pytest.raises(ClientError) as exc:
        lam.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Manual")
    assert error_of(exc) == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:
        lam.put_runtime_management_config(FunctionName=name, UpdateRuntimeOn="Sometimes")
    assert error_of(exc) == ("ValidationException", 400)
    with pytest.raises(ClientError) as exc:
        lam.get_runtime_management_config(FunctionName=name, Qualifier="7")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_recursion_config(lam):
    name = unique("rec")
    python_function(lam, name, CODE)
    assert lam.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == "Terminate"
    put = lam.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")
    assert_shape("lambda", "PutFunctionRecursionConfig", put)
    assert lam.get_function_recursion_config(FunctionName=name)["RecursiveLoop"] == "Allow"
    with pytest.raises(ClientError) as exc:
        lam.put_function_recursion_config(FunctionName=name, RecursiveLoop="Maybe")
    assert error_of(exc) == ("ValidationException", 400)
