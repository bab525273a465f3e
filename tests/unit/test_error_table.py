"""The table of AWS's error messages (firebox/messages.py) against botocore's Lambda model:
every error an implemented operation declares is either one Firebox answers with, from
the table, or listed below as one it cannot produce, with the reason."""

from __future__ import annotations

import string

import botocore.session
import pytest
from aiohttp import web

from firebox import messages
from firebox.api import (
    async_routes,
    esm_routes,
    function_settings_routes,
    lambda_routes,
    policy_routes,
    provisioned_routes,
    streaming_routes,
    url_routes,
)
from firebox.api.operations import implemented

LAMBDA = botocore.session.get_session().get_service_model("lambda")

# Errors raised outside the table: the front door's catch-all for a bug in Firebox.
FRONT_DOOR = {
    "ServiceException": "api/server.py turns any unexpected exception into a logged 500",
}

# Errors a Lambda operation declares that Firebox cannot produce, and why.
NOT_PRODUCED = {
    "EC2AccessDeniedException": "functions do not attach to a VPC (no ENIs)",
    "EC2ThrottledException": "functions do not attach to a VPC (no ENIs)",
    "EC2UnexpectedException": "functions do not attach to a VPC (no ENIs)",
    "ENINotReadyException": "functions do not attach to a VPC (no ENIs)",
    "ENILimitReachedException": "functions do not attach to a VPC (no ENIs)",
    "InvalidSecurityGroupIDException": "functions do not attach to a VPC (no ENIs)",
    "InvalidSubnetIDException": "functions do not attach to a VPC (no ENIs)",
    "SubnetIPAddressLimitReachedException": "functions do not attach to a VPC (no ENIs)",
    "EFSIOException": "no EFS file systems are mounted",
    "EFSMountConnectivityException": "no EFS file systems are mounted",
    "EFSMountFailureException": "no EFS file systems are mounted",
    "EFSMountTimeoutException": "no EFS file systems are mounted",
    "S3FilesMountConnectivityException": "no S3 file systems are mounted",
    "S3FilesMountFailureException": "no S3 file systems are mounted",
    "S3FilesMountTimeoutException": "no S3 file systems are mounted",
    "KMSAccessDeniedException": "environment variables are not encrypted with KMS keys",
    "KMSDisabledException": "environment variables are not encrypted with KMS keys",
    "KMSInvalidStateException": "environment variables are not encrypted with KMS keys",
    "KMSNotFoundException": "environment variables are not encrypted with KMS keys",
    "SnapStartException": "no SnapStart",
    "SnapStartNotReadyException": "no SnapStart",
    "SnapStartRegenerationFailureException": "no SnapStart",
    "SnapStartTimeoutException": "no SnapStart",
    "CodeVerificationFailedException": "no code-signing configs exist on a Firebox server",
    "InvalidCodeSignatureException": "no code-signing configs exist on a Firebox server",
    "CodeArtifactUserDeletedException": "no container-image functions",
    "CodeArtifactUserFailedException": "no container-image functions",
    "CodeArtifactUserPendingException": "no container-image functions",
    "InvalidZipFileException": "packages are unzipped and checked at upload, never at invoke",
    "InvalidRuntimeException": "runtimes are checked at create/update; a runtime that fails "
    "at invoke is a function error (Runtime.*), as in Lambda",
    "ResourceNotReadyException": "functions are Active as soon as they are created",
    "RecursiveInvocationException": "recursive-loop detection is stored, not enforced",
    "UnsupportedMediaTypeException": "every operation here takes JSON or raw bytes",
    "CodeStorageExceededException": "code storage is bounded by the disk, not by a quota",
    "ResourceInUseException": "no operation here waits on a resource in use",
    "PolicyLengthExceededException": "resource policies have no size limit here",
    "SerializedRequestEntityTooLargeException": "request bodies over the front door's limit "
    "are RequestTooLargeException (api/server.py)",
    "ServiceQuotaExceededException": "no capacity providers",
    "FunctionVersionsPerCapacityProviderLimitExceededException": "no capacity providers",
    "NoPublishedVersionException": "no capacity providers or durable functions",
    "DurableExecutionAlreadyStartedException": "no durable functions",
    "ModeNotSupportedException": "no durable functions",
    "RuntimeAliasDeletedException": "runtime versions are not managed",
    "RuntimeVersionDeletedException": "runtime versions are not managed",
    "PublicPolicyException": "no public-access block for resource policies",
    "AliasLimitExceededException": "no limit on aliases",
}


def _implemented() -> set[str]:
    web_app = web.Application()
    for module in (
        lambda_routes,
        async_routes,
        esm_routes,
        function_settings_routes,
        policy_routes,
        provisioned_routes,
        url_routes,
        streaming_routes,
    ):
        # The routes only: what they are given is not needed to list them.
        module.register(web_app, None)  # type: ignore[operator, arg-type]
    return implemented(web_app)


IMPLEMENTED = sorted(_implemented())
TABLE_CODES = {m.code for m in messages.table().values()}


def test_the_routes_are_lambda_operations_of_the_model():
    assert len(IMPLEMENTED) >= 50
    assert set(IMPLEMENTED) <= set(LAMBDA.operation_names)


@pytest.mark.parametrize("operation", IMPLEMENTED)
def test_every_declared_error_is_in_the_table_or_explained(operation):
    missing = []
    for shape in LAMBDA.operation_model(operation).error_shapes:
        code = shape.error_code or shape.name
        if code not in TABLE_CODES and code not in FRONT_DOOR and code not in NOT_PRODUCED:
            missing.append(code)
    assert not missing, f"{operation} declares {missing}: add a message or a reason"


def test_what_the_table_produces_is_not_also_explained_away():
    assert not TABLE_CODES & set(NOT_PRODUCED)


def test_every_explained_code_is_declared_by_an_implemented_operation():
    declared = {
        shape.error_code or shape.name
        for op in IMPLEMENTED
        for shape in LAMBDA.operation_model(op).error_shapes
    }
    assert set(NOT_PRODUCED) <= declared, set(NOT_PRODUCED) - declared


def test_each_lambda_message_has_the_models_status():
    statuses = {
        s.error_code or s.name: s.metadata["error"]["httpStatusCode"] for s in LAMBDA.error_shapes
    }
    wrong = {
        name: (m.code, m.error.status, statuses[m.code])
        for name, m in messages.table().items()
        if m.code in statuses
        and m.error.status != statuses[m.code]
        # CloudWatch Logs and EventBridge answer their ResourceNotFoundException with 400.
        and not name.startswith(("LOG_", "RULE_", "EVENT_"))
    }
    assert not wrong


def test_templates_name_only_their_own_values():
    for name, message in messages.table().items():
        fields = {f for _, f, _, _ in string.Formatter().parse(message.template) if f}
        values = {f.split("!")[0]: "x" for f in fields}
        assert message(**values).message, name
