"""Functions through boto3: create, get, list, update, delete, waiters, validation errors."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, invoke_json, make_zip, python_function, unique
from shapes import assert_shape

CODE = "def handler(event, context):\n    return {'ok': True, 'event': event}\n"


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_function_returns_exact_sha_and_size(lam):
    name = unique()
    data = make_zip({"app.py": CODE})
    resp = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": data},
        MemorySize=256,
        Timeout=10,
        Description="d",
        Environment={"Variables": {"AB": "1"}},
        EphemeralStorage={"Size": 1024},
        Architectures=["x86_64"],
        Tags={"team": "x"},
    )
    assert_shape("lambda", "CreateFunction", resp)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert resp["CodeSize"] == len(data)
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert resp["MemorySize"] == 256 and resp["Timeout"] == 10
    assert resp["Environment"] == {"Variables": {"AB": "1"}}
    assert resp["EphemeralStorage"] == {"Size": 1024}
    assert resp["Version"] == "$LATEST"


def test_get_function_serves_the_exact_zip(lam):
    name = unique()
    data = make_zip({"app.py": CODE, "data/x.txt": "hello"})
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": data},
        Tags={"k": "v"},
    )
    resp = lam.get_function(FunctionName=name)
    assert_shape("lambda", "GetFunction", resp)
    assert resp["Tags"] == {"k": "v"}
    with urllib.request.urlopen(resp["Code"]["Location"], timeout=10) as fh:
        assert fh.read() == data
    config = lam.get_function_configuration(FunctionName=name)
    assert_shape("lambda", "GetFunctionConfiguration", config)
    assert config["CodeSha256"] == resp["Configuration"]["CodeSha256"]


def test_code_location_refuses_a_tampered_signature(lam):
    name = unique()
    python_function(lam, name, CODE)
    url = lam.get_function(FunctionName=name)["Code"]["Location"]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url[:-4] + "0000", timeout=10)
    assert exc.value.code == 403


def test_waiters_see_active_and_updated(lam):
    name = unique()
    python_function(lam, name, CODE)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=7)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 7


def test_list_functions_paginates_with_marker(lam):
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        python_function(lam, n, CODE)
    seen = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
        assert_shape("lambda", "ListFunctions", page)
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
    assert [n for n in seen if n.startswith(prefix)] == names
    assert len(seen) == len(set(seen))


def test_update_code_changes_what_runs(lam):
    name = unique()
    python_function(lam, name, "def handler(e, c):\n    return 1\n")
    assert invoke_json(lam, name)[0] == 1
    new = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    resp = lam.update_function_code(FunctionName=name, ZipFile=new)
    assert_shape("lambda", "UpdateFunctionCode", resp)
    assert resp["CodeSha256"] == base64.b64encode(hashlib.sha256(new).digest()).decode()
    assert invoke_json(lam, name)[0] == 2


def test_update_configuration_changes_environment(lam):
    name = unique()
    python_function(lam, name, "import os\ndef handler(e, c):\n    return os.environ.get('XY')\n")
    assert invoke_json(lam, name)[0] is None
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"XY": "y"}})
    assert invoke_json(lam, name)[0] == "y"


def test_revision_id_mismatch_is_precondition_failed(lam):
    name = unique()
    python_function(lam, name, CODE)
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId="nope")
    assert error_of(exc) == ("PreconditionFailedException", 412)


def test_delete_function_then_everything_is_not_found(lam):
    name = unique()
    python_function(lam, name, CODE)
    lam.delete_function(FunctionName=name)
    for call in (
        lambda: lam.get_function(FunctionName=name),
        lambda: lam.invoke(FunctionName=name),
        lambda: lam.delete_function(FunctionName=name),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_create_twice_is_a_conflict(lam):
    name = unique()
    python_function(lam, name, CODE)
    with pytest.raises(ClientError) as exc:
        python_function(lam, name, CODE)
    assert error_of(exc) == ("ResourceConflictException", 409)


@pytest.mark.parametrize(
    ("overrides", "code", "status"),
    [
        ({"Runtime": "python2.0"}, "InvalidParameterValueException", 400),
        ({"Runtime": "java21"}, "InvalidParameterValueException", 400),
        ({"MemorySize": 20000}, "ValidationException", 400),
        ({"Timeout": 901}, "ValidationException", 400),
        ({"Handler": "bad handler"}, "ValidationException", 400),
        ({"Role": "not-a-role"}, "ValidationException", 400),
        ({"FunctionName": "bad name!"}, "ValidationException", 400),
        ({"Code": {"ZipFile": b"this is not a zip"}}, "InvalidParameterValueException", 400),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "InvalidParameterValueException",
            400,
        ),
        (
            {"Environment": {"Variables": {"BIG": "x" * 5000}}},
            "InvalidParameterValueException",
            400,
        ),
        ({"EphemeralStorage": {"Size": 20000}}, "ValidationException", 400),
        (
            {"Layers": ["arn:aws:lambda:us-east-1:000000000000:layer:nope:1"]},
            "InvalidParameterValueException",
            400,
        ),
    ],
)
def test_bad_create_input_gets_aws_error(lam, overrides, code, status):
    params = dict(
        FunctionName=unique(),
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": CODE})},
    )
    params.update(overrides)
    with pytest.raises(ClientError) as exc:
        lam.create_function(**params)
    assert error_of(exc) == (code, status)


def _post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_unsigned_request_is_refused_before_parsing(server):
    status, headers, body = _post(
        server.endpoint + "/2015-03-31/functions",
        b"{not json",
        {"Content-Type": "application/json"},
    )
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_signed_malformed_json_is_invalid_request_content(server):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(
        method="POST",
        url=server.endpoint + "/2015-03-31/functions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", "us-east-1").add_auth(
        req
    )
    status, headers, body = _post(req.url, req.body, dict(req.headers))
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "message" in json.loads(body)


def test_get_unknown_function_is_not_found(lam):
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName="does-not-exist")
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName="does-not-exist:7")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_tags(lam):
    name = unique()
    arn = python_function(lam, name, CODE)["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"a": "1", "b": "2"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"a": "1", "b": "2"}
    lam.untag_resource(Resource=arn, TagKeys=["a"])
    tags = lam.list_tags(Resource=arn)
    assert_shape("lambda", "ListTags", tags)
    assert tags["Tags"] == {"b": "2"}
    with pytest.raises(ClientError) as exc:
        lam.list_tags(Resource=arn.replace(name, "missing-fn"))
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_account_settings_count_functions(lam):
    resp = lam.get_account_settings()
    assert_shape("lambda", "GetAccountSettings", resp)
    assert resp["AccountLimit"]["ConcurrentExecutions"] == 1000  # the default setting
    listed = [
        f for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]
    ]
    assert listed and resp["AccountUsage"]["FunctionCount"] == len(listed)


def test_full_arn_and_partial_arn_address_the_function(lam):
    name = unique()
    arn = python_function(lam, name, CODE)["FunctionArn"]
    assert lam.get_function(FunctionName=arn)["Configuration"]["FunctionName"] == name
    partial = f"000000000000:function:{name}"
    assert invoke_json(lam, partial, {"x": 1})[0] == {"ok": True, "event": {"x": 1}}
    assert json.loads(json.dumps(lam.get_function_configuration(FunctionName=arn)))
