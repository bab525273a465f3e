"""Errors an SDK user hits, answered with AWS's own code, status and message, word for word.

Each case is sent as a signed HTTP request to a real server and checked on the raw answer:
the status, the x-amzn-ErrorType header and the JSON body exactly (botocore's parser
would drop or rename members). The expected messages are AWS's, as recorded from real AWS
answers (AWS-validated snapshot tests of the Lambda, CloudWatch Logs and EventBridge APIs).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import python_function, unique

ARN = "arn:aws:lambda:us-east-1:000000000000:function"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.json: Any = json.loads(body) if body else None

    @property
    def code(self) -> str | None:
        return self.headers.get("x-amzn-errortype")


def send(
    server: Any,
    method: str,
    path: str,
    body: Any = None,
    service: str = "lambda",
    target: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if target:
        all_headers.update({"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    req = AWSRequest(method=method, url=server.endpoint + path, data=data, headers=all_headers)
    SigV4Auth(Credentials(server.access_key, server.secret_key), service, "us-east-1").add_auth(req)
    raw = urllib.request.Request(
        req.url, data=data or None, headers=dict(req.headers), method=method
    )
    try:
        with urllib.request.urlopen(raw, timeout=30) as resp:
            return Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers), err.read())


def lambda_error(answer: Answer, status: int, code: str, message: str, key: str) -> None:
    """A Lambda error body: Type User and the message under the model's member name."""
    assert (answer.status, answer.code) == (status, code), answer.json
    assert answer.json == {"Type": "User", key: message}


def validation_error(answer: Answer, message: str) -> None:
    """AWS's front door answers these before Lambda: no Type in the body."""
    assert (answer.status, answer.code) == (400, "ValidationException"), answer.json
    assert answer.json == {"message": message}


def not_found(answer: Answer, message: str) -> None:
    lambda_error(answer, 404, "ResourceNotFoundException", message, "Message")


def invalid(answer: Answer, message: str) -> None:
    lambda_error(answer, 400, "InvalidParameterValueException", message, "message")


@pytest.fixture(scope="module")
def fn(lam: Any) -> str:
    name = unique("errs")
    python_function(lam, name, "def handler(e, c):\n    return 1\n")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return name


# --- function names and qualifiers --------------------------------------------------------


def test_a_function_arn_of_another_region_is_not_found(server):
    other = "arn:aws:lambda:ap-southeast-1:000000000000:function:somefn"
    not_found(
        send(server, "GET", f"/2015-03-31/functions/{other}"),
        "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')",
    )
    not_found(
        send(server, "POST", f"/2015-03-31/functions/{other}/invocations", b"{}"),
        "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')",
    )


def test_a_65_character_name_is_lambdas_invalid_parameter(server):
    name = "a" * 65
    invalid(
        send(server, "GET", f"/2015-03-31/functions/{name}"),
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64",
    )


def test_a_malformed_name_is_a_validation_error_with_the_models_pattern(server):
    validation_error(
        send(
            server,
            "POST",
            "/2015-03-31/functions",
            {
                "FunctionName": "invalid:function:name",
                "Role": "arn:aws:iam::000000000000:role/r",
                "Code": {"ZipFile": "UEs="},
            },
        ),
        "1 validation error detected: Value 'invalid:function:name' at 'functionName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?"
        "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
    )


def test_function_not_found_names_what_was_asked_for(server):
    # GetFunction without a qualifier names the function; with one, the qualified ARN.
    not_found(send(server, "GET", "/2015-03-31/functions/nope"), f"Function not found: {ARN}:nope")
    not_found(
        send(server, "GET", "/2015-03-31/functions/nope?Qualifier=%24LATEST"),
        f"Function not found: {ARN}:nope:$LATEST",
    )
    # Invoke and PutFunctionConcurrency name $LATEST when no qualifier is given.
    not_found(
        send(server, "POST", "/2015-03-31/functions/nope/invocations", b"{}"),
        f"Function not found: {ARN}:nope:$LATEST",
    )
    not_found(
        send(
            server,
            "PUT",
            "/2017-10-31/functions/nope/concurrency",
            {"ReservedConcurrentExecutions": 1},
        ),
        f"Function not found: {ARN}:nope:$LATEST",
    )


def test_a_missing_alias_is_reported_as_the_function_arn_with_the_alias(server, fn):
    not_found(
        send(server, "GET", f"/2015-03-31/functions/{fn}?Qualifier=gone"),
        f"Function not found: {ARN}:{fn}:gone",
    )
    not_found(
        send(server, "POST", f"/2015-03-31/functions/{fn}:gone/invocations", b"{}"),
        f"Function not found: {ARN}:{fn}:gone",
    )
    not_found(
        send(server, "GET", f"/2015-03-31/functions/{fn}/aliases/gone"),
        f"Cannot find alias arn: {ARN}:{fn}:gone",
    )
    not_found(
        send(server, "PUT", f"/2015-03-31/functions/{fn}/aliases/gone", {"Description": "x"}),
        f"Alias not found: {ARN}:{fn}:gone",
    )


def test_qualifiers_that_disagree_or_delete_latest(server, fn):
    invalid(
        send(server, "GET", f"/2015-03-31/functions/{fn}:1?Qualifier=live"),
        "The derived qualifier from the function name does not match the specified qualifier.",
    )
    # Refused before Lambda looks for the function.
    invalid(
        send(server, "DELETE", "/2015-03-31/functions/nope?Qualifier=%24LATEST"),
        "$LATEST version cannot be deleted without deleting the function.",
    )
    # Deleting a version that is not there succeeds, as on AWS.
    assert send(server, "DELETE", f"/2015-03-31/functions/{fn}?Qualifier=1233").status == 204
    invalid(
        send(
            server,
            "PUT",
            f"/2017-10-31/functions/{fn}:live/concurrency",
            {"ReservedConcurrentExecutions": 1},
        ),
        "This operation is permitted on Lambda functions only. Aliases and versions do not "
        "support this operation. Please specify either a function name or an unqualified "
        "function ARN.",
    )


# --- layers ----------------------------------------------------------------------------


def test_layer_version_zero_is_invalid(server):
    message = "Layer Version Cannot be less than 1"
    invalid(send(server, "GET", "/2018-10-31/layers/somelayer/versions/0"), message)
    invalid(send(server, "DELETE", "/2018-10-31/layers/somelayer/versions/0"), message)
    not_found(
        send(server, "GET", "/2018-10-31/layers/somelayer/versions/2"),
        "The resource you requested does not exist.",
    )


def test_layer_runtimes_and_architectures_break_the_model(server):
    answer = send(
        server,
        "POST",
        "/2018-10-31/layers/somelayer/versions",
        {"Content": {"ZipFile": "UEs="}, "CompatibleArchitectures": ["invalidarch"]},
    )
    validation_error(
        answer,
        "1 validation error detected: Value '[invalidarch]' at 'compatibleArchitectures' "
        "failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy "
        "enum value set: [x86_64, arm64], Member must not be null]",
    )


# --- asynchronous invocation configs -----------------------------------------------------


def test_event_invoke_config_misses(server, fn):
    eic = "/2019-09-25/functions/{}/event-invoke-config"
    not_found(
        send(server, "GET", eic.format(fn)),
        f"The function {ARN}:{fn}:$LATEST doesn't have an EventInvokeConfig",
    )
    not_found(
        send(server, "GET", eic.format(fn) + "?Qualifier=1"),
        f"The function {ARN}:{fn}:1 doesn't have an EventInvokeConfig",
    )
    not_found(
        send(server, "DELETE", eic.format("nope")),
        f"The function {ARN}:nope:$LATEST doesn't have an EventInvokeConfig",
    )
    not_found(
        send(server, "PUT", eic.format("nope"), {"MaximumRetryAttempts": 1}),
        "The function doesn't exist.",
    )
    invalid(
        send(server, "PUT", eic.format(fn), {}),
        "You must specify at least one of error handling or destination setting.",
    )
    invalid(
        send(
            server,
            "PUT",
            eic.format(fn),
            {"DestinationConfig": {"OnFailure": {"Destination": f"{ARN}:{fn}"}}},
        ),
        "You can't specify the function as a destination for itself.",
    )
    invalid(
        send(
            server,
            "PUT",
            eic.format(fn),
            {"DestinationConfig": {"OnSuccess": {"Destination": f"{ARN}:doesnotexist"}}},
        ),
        f"The destination ARN {ARN}:doesnotexist is invalid.",
    )


# --- model violations ---------------------------------------------------------------------


def test_enum_violations_list_the_values_as_aws_does(server, fn):
    validation_error(
        send(
            server,
            "PUT",
            f"/2024-08-31/functions/{fn}/recursion-config",
            {"RecursiveLoop": "InvalidValue"},
        ),
        "1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Terminate, Allow]",
    )
    validation_error(
        send(server, "GET", "/2015-03-31/functions?FunctionVersion=invalid"),
        "1 validation error detected: Value 'invalid' at 'functionVersion' failed to satisfy "
        "constraint: Member must satisfy enum value set: [ALL]",
    )


def test_statement_ids_and_routing_weights_break_the_model(server, fn):
    validation_error(
        send(
            server,
            "POST",
            f"/2015-03-31/functions/{fn}/policy",
            {"StatementId": "example.com", "Action": "lambda:InvokeFunction", "Principal": "*"},
        ),
        "1 validation error detected: Value 'example.com' at 'statementId' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
    )
    validation_error(
        send(
            server,
            "POST",
            f"/2015-03-31/functions/{fn}/aliases",
            {
                "Name": "w",
                "FunctionVersion": "1",
                "RoutingConfig": {"AdditionalVersionWeights": {"2": 2.0}},
            },
        ),
        "1 validation error detected: Value '{2=2.0}' at 'routingConfig.additionalVersionWeights' "
        "failed to satisfy constraint: Map value must satisfy constraint: [Member must have "
        "value less than or equal to 1.0, Member must have value greater than or equal to 0.0, "
        "Member must not be null]",
    )
    validation_error(
        send(server, "DELETE", "/2017-03-31/tags/" + f"{ARN}:{fn}"),
        "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: "
        "Member must not be null",
    )


def test_provisioned_concurrency_of_zero_and_on_latest(server, fn):
    path = f"/2019-09-30/functions/{fn}/provisioned-concurrency"
    validation_error(
        send(server, "PUT", path + "?Qualifier=1", {"ProvisionedConcurrentExecutions": 0}),
        "1 validation error detected: Value '0' at 'provisionedConcurrentExecutions' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1",
    )
    invalid(
        send(server, "PUT", path + "?Qualifier=%24LATEST", {"ProvisionedConcurrentExecutions": 1}),
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
    )
    not_found(
        send(server, "GET", path + "?Qualifier=noalias"),
        f"Cannot find alias arn: {ARN}:{fn}:noalias",
    )


def test_a_member_of_the_wrong_json_type_is_a_400_not_a_500(server, fn):
    answer = send(server, "PUT", f"/2015-03-31/functions/{fn}/configuration", {"MemorySize": "x"})
    assert (answer.status, answer.code) == (400, "InvalidRequestContentException")
    answer = send(server, "PUT", f"/2015-03-31/functions/{fn}/configuration", {"Environment": []})
    assert (answer.status, answer.code) == (400, "InvalidRequestContentException")


def test_tags_on_a_version_are_refused(server, fn):
    invalid(
        send(server, "POST", "/2017-03-31/tags/" + f"{ARN}:{fn}:1", {"Tags": {"a": "b"}}),
        "Tags on function aliases and versions are not supported. Please specify a function ARN.",
    )


def test_oversized_environment_says_what_it_measured(server, fn):
    variables = {"LARGE_VAR": "x" * 4097}
    invalid(
        send(
            server,
            "PUT",
            f"/2015-03-31/functions/{fn}/configuration",
            {"Environment": {"Variables": variables}},
        ),
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided exceeded the 4KB limit. String measured: "
        + json.dumps(variables, separators=(",", ":")),
    )


# --- CloudWatch Logs and EventBridge ----------------------------------------------------------


def logs(server: Any, op: str, body: Any) -> Answer:
    return send(server, "POST", "/", body, "logs", f"Logs_20140328.{op}")


def events(server: Any, op: str, body: Any) -> Answer:
    return send(server, "POST", "/", body, "events", f"AWSEvents.{op}")


def json11_error(answer: Answer, code: str, message: str) -> None:
    assert (answer.status, answer.code) == (400, code), answer.json
    assert answer.json == {"__type": code, "message": message}


def test_logs_errors(server):
    group = unique("/errs")
    json11_error(
        logs(server, "GetLogEvents", {"logGroupName": group, "logStreamName": "s", "limit": 10001}),
        "InvalidParameterException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 10000",
    )
    json11_error(
        logs(server, "DescribeLogStreams", {"logGroupName": group}),
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
    assert logs(server, "CreateLogGroup", {"logGroupName": group}).status == 200
    json11_error(
        logs(server, "CreateLogGroup", {"logGroupName": group}),
        "ResourceAlreadyExistsException",
        "The specified log group already exists",
    )
    json11_error(
        logs(server, "DescribeLogStreams", {"logGroupName": group, "logGroupIdentifier": group}),
        "ValidationException",
        "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
    )
    json11_error(
        logs(server, "CreateLogGroup", {"logGroupName": "g" * 513}),
        "InvalidParameterException",
        "Invalid LogGroup or LogStream, both must have length less than or equal to 512.",
    )
    answer = logs(server, "DescribeLogGroups", {"limit": "ten"})
    assert (answer.status, answer.code) == (400, "SerializationException")


def test_eventbridge_errors(server):
    json11_error(
        events(server, "DescribeRule", {"Name": "no-such-rule"}),
        "ResourceNotFoundException",
        "Rule no-such-rule does not exist on EventBus default.",
    )
    rule = unique("errs")
    assert (
        events(server, "PutRule", {"Name": rule, "ScheduleExpression": "rate(1 hour)"}).status
        == 200
    )
    json11_error(
        events(
            server, "PutTargets", {"Rule": rule, "Targets": [{"Id": "!@#$@!#$", "Arn": f"{ARN}:x"}]}
        ),
        "ValidationException",
        "1 validation error detected: Value '!@#$@!#$' at 'targets.1.member.id' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+",
    )
    json11_error(
        events(server, "PutRule", {"Name": rule, "ScheduleExpression": "cron(INVALID)"}),
        "ValidationException",
        "Parameter ScheduleExpression is not valid.",
    )
