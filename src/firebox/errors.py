"""Every error Firebox raises on purpose: each class carries its AWS code and HTTP status.

Code anywhere raises these; ``api/errors.py`` alone turns them into responses.
"""

from __future__ import annotations

from typing import Any


class FireboxError(Exception):
    code: str = "ServiceException"
    status: int = 500
    # "User" for caller mistakes, "Service" for our side, as Lambda reports in the body;
    # None where AWS's front door answers before Lambda does and the body has no Type.
    kind: str | None = "User"

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        # Extra members of the error shape (e.g. Reason, retryAfterSeconds).
        self.fields = fields

    def headers(self) -> dict[str, str]:
        return {}


class ServiceError(FireboxError):
    code, status, kind = "ServiceException", 500, "Service"


class InvalidParameterValue(FireboxError):
    code, status = "InvalidParameterValueException", 400


class InvalidRequestContent(FireboxError):
    code, status = "InvalidRequestContentException", 400


class ValidationError(FireboxError):
    """A request breaking its operation's input shape (botocore's model): AWS's front door
    answers these, so the Lambda body carries no Type."""

    code, status, kind = "ValidationException", 400, None


class SerializationError(FireboxError):
    """A JSON 1.1 body that is not JSON, or a member of the wrong JSON type."""

    code, status, kind = "SerializationException", 400, None


class ResourceNotFound(FireboxError):
    code, status = "ResourceNotFoundException", 404


class ResourceConflict(FireboxError):
    code, status = "ResourceConflictException", 409


class ResourceInUse(FireboxError):
    code, status = "ResourceInUseException", 400


class PreconditionFailed(FireboxError):
    code, status = "PreconditionFailedException", 412


class RequestTooLarge(FireboxError):
    code, status = "RequestTooLargeException", 413


class RequestEntityTooLarge(FireboxError):
    """What Lambda answers for a zip over its size limit (not in botocore's model, which
    knows only RequestTooLargeException)."""

    code, status = "RequestEntityTooLargeException", 413


class UnsupportedMediaType(FireboxError):
    code, status = "UnsupportedMediaTypeException", 415


class CodeStorageExceeded(FireboxError):
    code, status = "CodeStorageExceededException", 400


class ProvisionedConcurrencyConfigNotFound(FireboxError):
    code, status = "ProvisionedConcurrencyConfigNotFoundException", 404


class TooManyRequests(FireboxError):
    """Throttled: ``fields`` carry Lambda's Reason and retryAfterSeconds."""

    code, status = "TooManyRequestsException", 429

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.fields.get("retryAfterSeconds", 1))}


class ResourceNotReady(FireboxError):
    code, status, kind = "ResourceNotReadyException", 502, "Service"


# Authentication (the shapes AWS's front door uses; botocore reads the code from the body).
class MissingAuthenticationToken(FireboxError):
    code, status = "MissingAuthenticationTokenException", 403


class IncompleteSignature(FireboxError):
    code, status = "IncompleteSignatureException", 403


class InvalidSignature(FireboxError):
    code, status = "InvalidSignatureException", 403


class UnrecognizedClient(FireboxError):
    code, status = "UnrecognizedClientException", 403


class AccessDenied(FireboxError):
    code, status = "AccessDeniedException", 403


class UnknownOperation(FireboxError):
    code, status = "UnknownOperationException", 404


# CloudWatch Logs / EventBridge (JSON 1.1) names for the same situations.
class LogsResourceNotFound(FireboxError):
    code, status = "ResourceNotFoundException", 400


class LogsInvalidParameter(FireboxError):
    code, status = "InvalidParameterException", 400


class LogsResourceAlreadyExists(FireboxError):
    code, status = "ResourceAlreadyExistsException", 400


class LogsTooManyTags(FireboxError):
    code, status = "TooManyTagsException", 400


class InvalidEventPattern(FireboxError):
    code, status = "InvalidEventPatternException", 400


class LimitExceeded(FireboxError):
    code, status = "LimitExceededException", 400


class CodeSigningConfigNotFound(FireboxError):
    code, status = "CodeSigningConfigNotFoundException", 404


class PushRefused(FireboxError):
    """A notification pushed to Firebox (S3, SNS) that is not taken now: the sender keeps
    it and tries again later."""

    code, status, kind = "ServiceUnavailableException", 503, "Service"
