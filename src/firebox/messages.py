"""AWS's error messages, word for word: one table, used by the code that raises.

Each entry is the error AWS answers with (its class carries code and status) and the
message's template. ``origin`` says where the wording comes from:

- ``AWS``: recorded from real AWS answers (AWS-validated snapshot tests of the Lambda,
  CloudWatch Logs and EventBridge APIs, or AWS's API reference);
- ``INFERRED``: AWS's error code for the situation, wording not confirmed against AWS;
- ``FIREBOX``: a limit of Firebox itself, which AWS has no message for.

Raise one with its values: ``raise FUNCTION_NOT_FOUND(arn=...)``. Model-shape violations
("1 validation error detected: ...") are composed by ``api/validate.py`` from botocore's
model, not listed here; the templates below that use that wording are the checks Lambda
makes itself, after its front door.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from firebox.errors import (
    CodeSigningConfigNotFound,
    FireboxError,
    InvalidEventPattern,
    InvalidParameterValue,
    InvalidRequestContent,
    LimitExceeded,
    LogsInvalidParameter,
    LogsResourceAlreadyExists,
    LogsResourceNotFound,
    LogsTooManyTags,
    PreconditionFailed,
    ProvisionedConcurrencyConfigNotFound,
    RequestEntityTooLarge,
    RequestTooLarge,
    ResourceConflict,
    ResourceNotFound,
    SerializationError,
    TooManyRequests,
    ValidationError,
)

AWS, INFERRED, FIREBOX = "aws", "inferred", "firebox"


@dataclass(frozen=True, slots=True)
class Message:
    error: type[FireboxError]
    template: str
    origin: str = AWS

    def __call__(self, fields: dict[str, Any] | None = None, **values: Any) -> FireboxError:
        """The error with its message filled in; ``fields`` are extra members of its shape."""
        return self.error(self.template.format(**values), **(fields or {}))

    @property
    def code(self) -> str:
        return self.error.code


# --- Lambda: functions and their names ---------------------------------------------------

FUNCTION_NOT_FOUND = Message(ResourceNotFound, "Function not found: {arn}")
FUNCTION_OTHER_REGION = Message(
    ResourceNotFound, "Functions from '{region}' are not reachable in this region ('{here}')"
)
FUNCTION_EXISTS = Message(ResourceConflict, "Function already exist: {name}", INFERRED)
# Lambda's own check on the name inside a full or partial ARN (the model allows 140).
FUNCTION_NAME_TOO_LONG = Message(
    InvalidParameterValue,
    "1 validation error detected: Value '{value}' at 'functionName' failed to satisfy "
    "constraint: Member must have length less than or equal to 64",
)
QUALIFIER_MISMATCH = Message(
    InvalidParameterValue,
    "The derived qualifier from the function name does not match the specified qualifier.",
)
UNQUALIFIED_ONLY = Message(
    InvalidParameterValue,
    "This operation is permitted on Lambda functions only. Aliases and versions do not "
    "support this operation. Please specify either a function name or an unqualified "
    "function ARN.",
)
LATEST_NOT_DELETABLE = Message(
    InvalidParameterValue, "$LATEST version cannot be deleted without deleting the function."
)
ALIAS_NOT_DELETABLE_HERE = Message(
    InvalidParameterValue,
    "Deletion of aliases is not supported by DeleteFunction: use DeleteAlias.",
    INFERRED,
)
VERSION_IN_USE = Message(
    ResourceConflict,
    "Unable to delete version because the following aliases reference it: [{aliases}]",
    INFERRED,
)
UNSUPPORTED_PARAMETERS = Message(InvalidParameterValue, "Unsupported parameters: {names}", FIREBOX)
REVISION_MISMATCH = Message(
    PreconditionFailed,
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetFunction/GetAlias API to retrieve the latest Revision Id",
)
POLICY_REVISION_MISMATCH = Message(
    PreconditionFailed,
    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy "
    "API to retrieve the latest Revision Id",
)
RESOURCE_NOT_FOUND = Message(ResourceNotFound, "The resource you requested does not exist.")

# --- Lambda: configuration ---------------------------------------------------------------

RUNTIME_INVALID = Message(
    InvalidParameterValue,
    "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum "
    "value set: [{runtimes}] or be a valid ARN",
)
RUNTIME_UNAVAILABLE = Message(
    InvalidParameterValue,
    # {hint}: what the host would need, e.g. " (it needs a JDK 21 …)" (runtimes.missing_hint).
    "The runtime parameter of {runtime} is not supported on this Firebox server{hint}. "
    "Supported runtimes: {runtimes}",
    FIREBOX,
)
HANDLER_REQUIRED = Message(
    InvalidParameterValue, "Handler is required for Zip package type.", INFERRED
)
ENV_RESERVED_KEYS = Message(
    InvalidParameterValue,
    "Lambda was unable to configure your environment variables because the environment "
    "variables you have provided contains reserved keys that are currently not supported "
    "for modification. Reserved keys used in this request: {keys}",
)
ENV_TOO_LARGE = Message(
    InvalidParameterValue,
    "Lambda was unable to configure your environment variables because the environment "
    "variables you have provided exceeded the 4KB limit. String measured: {measured}",
)
TOO_MANY_LAYERS = Message(InvalidParameterValue, "Cannot reference more than 5 layers.")
LAYER_VERSION_MISSING = Message(InvalidParameterValue, "Layer version {arn} does not exist.")
LAYER_TWICE = Message(
    InvalidParameterValue,
    "Two different versions of the same layer are not allowed to be referenced in the same "
    "function. {first} and {second} are versions of the same layer.",
)
LAYER_OTHER_REGION = Message(
    InvalidParameterValue,
    "Layers are not in the same region as the function. Layers are expected to be in "
    "region {region}.",
)
IMAGE_UNSUPPORTED = Message(
    InvalidParameterValue,
    "Container image functions are not supported by this Firebox server yet.",
    FIREBOX,
)
S3_CODE_UNSUPPORTED = Message(
    InvalidParameterValue,
    "Code.S3Bucket is not supported: upload the package as Code.ZipFile.",
    FIREBOX,
)
NO_CODE = Message(InvalidParameterValue, "Please provide a source for function code.", INFERRED)
UNZIP_FAILED = Message(
    InvalidParameterValue,
    "Could not unzip uploaded file. Please check your file, then try to upload again.",
)
ZIPPED_TOO_LARGE = Message(RequestEntityTooLarge, "Zipped size must be smaller than {limit} bytes")
UNZIPPED_TOO_LARGE = Message(
    InvalidParameterValue, "Unzipped size must be smaller than {limit} bytes"
)
ZIP_ENTRY_ESCAPES = Message(
    InvalidParameterValue, "Zip entry {entry!r} escapes the package root", FIREBOX
)
ZIP_ENTRY_INVALID_NAME = Message(
    InvalidParameterValue, "Zip entry {entry!r} is not a valid file name", FIREBOX
)
ZIP_ENTRY_CANNOT_UNPACK = Message(
    InvalidParameterValue, "Zip entry {entry!r} cannot be unpacked: {why}", FIREBOX
)
CODE_SHA_MISMATCH = Message(
    InvalidParameterValue,
    "CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({current}). "
    "Please try again with the CodeSHA256 in $LATEST.",
)
DEAD_LETTER_TARGET = Message(
    InvalidParameterValue, "DeadLetterConfig.TargetArn must be an ARN", INFERRED
)

# --- Lambda: tags ---------------------------------------------------------------------

TAGS_ON_QUALIFIED = Message(
    InvalidParameterValue,
    "Tags on function aliases and versions are not supported. Please specify a function ARN.",
)
TAGS_EMPTY = Message(
    InvalidParameterValue, "An error occurred and the request cannot be processed."
)
TAGS_TOO_MANY = Message(InvalidParameterValue, "Number of tags exceeds resource tag limit.")

# --- Lambda: aliases and versions ---------------------------------------------------------

ALIAS_NOT_FOUND = Message(ResourceNotFound, "Alias not found: {arn}")
ALIAS_ARN_NOT_FOUND = Message(ResourceNotFound, "Cannot find alias arn: {arn}")
ALIAS_EXISTS = Message(ResourceConflict, "Alias already exists: {arn}")
ROUTING_TOO_MANY = Message(
    InvalidParameterValue, "Number of items in AdditionalVersionWeights cannot be greater than 1"
)
ROUTING_LATEST = Message(
    InvalidParameterValue, "$LATEST is not supported for an alias pointing to more than 1 version"
)
ROUTING_SAME_VERSION = Message(
    InvalidParameterValue,
    "Invalid function version {version}. Function version {version} is already included in "
    "routing configuration.",
)

# --- Lambda: layers -----------------------------------------------------------------------

LAYER_VERSION_ARN_INVALID = Message(
    InvalidParameterValue, "Layer version arn {arn} is not valid.", INFERRED
)
LAYER_VERSION_BELOW_ONE = Message(InvalidParameterValue, "Layer Version Cannot be less than 1")
LAYER_NO_CONTENT = Message(
    InvalidParameterValue, "Please provide a source for layer content.", INFERRED
)
LAYER_S3_UNSUPPORTED = Message(
    InvalidParameterValue, "Content.S3Bucket is not supported: use Content.ZipFile.", FIREBOX
)
LAYER_UNZIP_FAILED = Message(InvalidParameterValue, "Could not unzip uploaded file.", INFERRED)

# --- Lambda: concurrency ------------------------------------------------------------------

RESERVED_BELOW_MINIMUM = Message(
    InvalidParameterValue,
    "Specified ReservedConcurrentExecutions for function decreases account's "
    "UnreservedConcurrentExecution below its minimum value of [{minimum}].",
)
RESERVED_BELOW_PROVISIONED = Message(
    InvalidParameterValue,
    " ReservedConcurrentExecutions  {reserved} should not be lower than function's total "
    "provisioned concurrency [{provisioned}].",
)
PROVISIONED_ON_LATEST = Message(
    InvalidParameterValue,
    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
)
PROVISIONED_NEEDS_QUALIFIER = Message(
    InvalidParameterValue,
    "The function resource provided must be an alias or a published version.",
)
PROVISIONED_NOT_FOUND = Message(
    ProvisionedConcurrencyConfigNotFound,
    "No Provisioned Concurrency Config found for this function",
)
PROVISIONED_OVER_RESERVED = Message(
    InvalidParameterValue,
    "Requested Provisioned Concurrency should not be greater than the "
    "reservedConcurrentExecution for function",
)
PROVISIONED_OVER_UNRESERVED = Message(
    InvalidParameterValue,
    "Specified ConcurrentExecutions for function is greater than account's unreserved "
    "concurrency [{unreserved}].",
)
PROVISIONED_ALIAS_ON_PROVISIONED_VERSION = Message(
    ResourceConflict,
    "Alias can't be used for Provisioned Concurrency configuration on an already "
    "Provisioned version",
)
PROVISIONED_VERSION_UNDER_ALIAS = Message(
    ResourceConflict, "Version is pointed by a Provisioned Concurrency alias"
)
PROVISIONED_WEIGHTED_ALIAS = Message(
    InvalidParameterValue,
    "Alias with weights can not be used with Provisioned Concurrency",
    INFERRED,
)

# --- Lambda: asynchronous invocation configs ---------------------------------------------------

EIC_FUNCTION_MISSING = Message(ResourceNotFound, "The function doesn't exist.")
EIC_NOT_FOUND = Message(ResourceNotFound, "The function {arn} doesn't have an EventInvokeConfig")
EIC_NOTHING_SET = Message(
    InvalidParameterValue,
    "You must specify at least one of error handling or destination setting.",
)
EIC_DESTINATION_MISSING = Message(InvalidParameterValue, "The destination ARN {arn} is invalid.")
EIC_DESTINATION_INVALID = Message(
    InvalidParameterValue,
    "The provided destination config DestinationConfig(onSuccess={on_success}, "
    "onFailure={on_failure}) is invalid.",
)
EIC_DESTINATION_SELF = Message(
    InvalidParameterValue, "You can't specify the function as a destination for itself."
)

# --- Lambda: function URLs, policies, code signing, runtime settings ----------------------

URL_EXISTS = Message(
    ResourceConflict,
    "Failed to create function url config for [functionArn = {arn}]. Error message:  "
    "FunctionUrlConfig exists for this Lambda function",
)
URL_FUNCTION_MISSING = Message(ResourceNotFound, "Function does not exist")
URL_CORS_FIELD = Message(InvalidParameterValue, "Unknown Cors fields: {names}", FIREBOX)
POLICY_ON_LATEST = Message(
    InvalidParameterValue, "We currently do not support adding policies for $LATEST."
)
POLICY_PRINCIPAL_INVALID = Message(
    InvalidParameterValue,
    "The provided principal was invalid. Please check the principal and try again.",
)
POLICY_STATEMENT_EXISTS = Message(
    ResourceConflict,
    "The statement id ({sid}) provided already exists. Please provide a new statement id, or "
    "remove the existing statement.",
)
POLICY_NONE = Message(ResourceNotFound, "No policy is associated with the given resource.")
POLICY_NONE_FOR_FUNCTION = Message(ResourceNotFound, "No policy found for: {arn}")
POLICY_STATEMENT_MISSING = Message(
    ResourceNotFound, "Statement {sid} is not found in resource policy."
)
CODE_SIGNING_CONFIG_NOT_FOUND = Message(
    CodeSigningConfigNotFound,
    "The code signing configuration cannot be found. Check that the provided configuration "
    "is not deleted: {arn}.",
)
RUNTIME_MANAGEMENT_ALIAS = Message(
    InvalidParameterValue,
    "Runtime management configuration applies to $LATEST or a published version, not to an alias.",
    INFERRED,
)
RUNTIME_VERSION_ARN_REQUIRED = Message(
    InvalidParameterValue, "RuntimeVersionArn is required when UpdateRuntimeOn is Manual.", INFERRED
)
RUNTIME_VERSION_ARN_UNEXPECTED = Message(
    InvalidParameterValue,
    "RuntimeVersionArn can be set only when UpdateRuntimeOn is Manual.",
    INFERRED,
)

# --- Lambda: event source mappings ------------------------------------------------------

ESM_FUNCTION_MISSING = Message(InvalidParameterValue, "Function does not exist")
ESM_SOURCE_MISSING = Message(InvalidParameterValue, "Unrecognized event source.")
ESM_SOURCE_UNSUPPORTED = Message(
    InvalidParameterValue,
    "Unsupported EventSourceArn {arn!r}: use an SQS queue, Kinesis stream, DynamoDB stream, "
    "SNS topic or S3 bucket ARN, or arn:aws:<redis|rabbitmq|nats|postgres>:::<url>, e.g. "
    "arn:aws:redis:::redis://127.0.0.1:6379/0",
    FIREBOX,
)
ESM_SOURCE_URL = Message(
    InvalidParameterValue,
    "EventSourceArn for {kind} needs a {scheme}:// URL with a host, got {url!r}",
    FIREBOX,
)
ESM_SOURCE_NAMES = Message(InvalidParameterValue, "{field} must name exactly one {what}", FIREBOX)
ESM_STARTING_POSITION = Message(
    InvalidParameterValue,
    "Unsupported starting position for arn type: {arn}",
)
ESM_FILTER_INVALID = Message(InvalidParameterValue, "Invalid filter pattern definition.")
ESM_DESTINATION = Message(
    InvalidParameterValue,
    "OnFailure destination must be the ARN of a Lambda function, an SQS queue, an SNS topic "
    "or an S3 bucket",
    FIREBOX,
)
ESM_SQS_WINDOW = Message(
    InvalidParameterValue,
    "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater "
    "than 10",
)
ESM_FIFO_BATCH = Message(
    InvalidParameterValue, "Batch size must be between 1 and 10 for a FIFO queue", INFERRED
)
ESM_STARTING_POSITION_MISSING = Message(
    InvalidParameterValue, "StartingPosition is required for arn type: {arn}", INFERRED
)
ESM_TIMESTAMP_MISSING = Message(
    InvalidParameterValue,
    "StartingPositionTimestamp must be set when StartingPosition is AT_TIMESTAMP",
    INFERRED,
)
ESM_RECORD_AGE = Message(
    InvalidParameterValue,
    "MaximumRecordAgeInSeconds must be -1 or between 60 and 604800",
    INFERRED,
)
ESM_SETUP_FAILED = Message(
    InvalidParameterValue, "Could not set up the event source {arn}: {error}", FIREBOX
)
ESM_TABLE = Message(
    InvalidParameterValue, "Topics must name one table as schema.table, got {table!r}", FIREBOX
)
ESM_ACCESS_TYPE = Message(
    InvalidParameterValue, "Unsupported SourceAccessConfiguration type {type}", FIREBOX
)

# --- Lambda: invoke -----------------------------------------------------------------------

PAYLOAD_NOT_JSON = Message(
    InvalidRequestContent,
    "Could not parse request body into json: Could not parse payload into json: {detail}",
)
PAYLOAD_TOO_LARGE = Message(
    RequestTooLarge,
    "{size} byte payload is too large for the {operation} invocation type (limit {limit} bytes)",
)
CLIENT_CONTEXT_INVALID = Message(
    InvalidParameterValue, "Client context must be a valid Base64-encoded JSON object.", INFERRED
)
CLIENT_CONTEXT_TOO_LARGE = Message(
    InvalidParameterValue, "Client context must be at most 3583 bytes.", INFERRED
)
RATE_EXCEEDED = Message(TooManyRequests, "Rate Exceeded.")
# A fleet with no worker that can take an invocation (none registered yet, all gone or
# draining): a throttle, which SDKs retry, with Lambda's capacity reason.
NO_WORKER = Message(TooManyRequests, "No worker can run this invocation now: {why}", FIREBOX)

# --- request bodies ------------------------------------------------------------------------

BODY_NOT_JSON = Message(InvalidRequestContent, "Could not parse request body into json: {detail}")
# The wrong JSON type for a member (botocore refuses these client-side; hand-made requests
# carry them). Lambda's deserializer words these its own way; this is the same prefix.
BODY_WRONG_TYPE = Message(
    InvalidRequestContent,
    "Could not parse request body into json: Could not parse payload into json: Cannot "
    "deserialize value of type `{java_type}` at '{path}'",
    INFERRED,
)
JSON11_NOT_JSON = Message(SerializationError, "{detail}", INFERRED)
JSON11_START_OF_STRUCTURE = Message(
    SerializationError, "Start of structure or map found where not expected."
)
JSON11_START_OF_LIST = Message(SerializationError, "Start of list found where not expected")
JSON11_WRONG_SCALAR = Message(SerializationError, "{token} can not be converted to {java_type}")

# --- CloudWatch Logs ------------------------------------------------------------------------

LOG_GROUP_NOT_FOUND = Message(LogsResourceNotFound, "The specified log group does not exist.")
LOG_STREAM_NOT_FOUND = Message(LogsResourceNotFound, "The specified log stream does not exist.")
LOG_GROUP_EXISTS = Message(LogsResourceAlreadyExists, "The specified log group already exists")
LOG_STREAM_EXISTS = Message(LogsResourceAlreadyExists, "The specified log stream already exists")
LOG_NAME_TOO_LONG = Message(
    LogsInvalidParameter,
    "Invalid LogGroup or LogStream, both must have length less than or equal to 512.",
)
LOG_PREFIX_AND_PATTERN = Message(
    LogsInvalidParameter,
    "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
)
LOG_NAME_AND_ARN = Message(
    ValidationError, "LogGroup name and LogGroup ARN are mutually exclusive parameters."
)
LOG_GROUP_REQUIRED = Message(
    LogsInvalidParameter, "Either logGroupName or logGroupIdentifier is required.", INFERRED
)
LOG_GROUP_ARN_INVALID = Message(LogsInvalidParameter, "Invalid log group ARN: {arn}", INFERRED)
LOG_RESOURCE_ARN_INVALID = Message(LogsInvalidParameter, "Invalid resourceArn: {arn}", INFERRED)
LOG_NEXT_TOKEN_INVALID = Message(LogsInvalidParameter, "The specified nextToken is invalid.")
LOG_ORDER_WITH_PREFIX = Message(
    LogsInvalidParameter, "Cannot order by LastEventTime with a logStreamNamePrefix.", INFERRED
)
LOG_EVENTS_ORDER = Message(
    LogsInvalidParameter,
    "Log events in a single PutLogEvents request must be in chronological order.",
)
LOG_EVENTS_SPAN = Message(
    LogsInvalidParameter,
    "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
    INFERRED,
)
LOG_STREAMS_NAMES_AND_PREFIX = Message(
    LogsInvalidParameter,
    "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
    INFERRED,
)
LOG_TOO_MANY_TAGS = Message(
    LogsTooManyTags, "A resource can have no more than {limit} tags.", INFERRED
)

# --- EventBridge -------------------------------------------------------------------------

RULE_NOT_FOUND = Message(LogsResourceNotFound, "Rule {name} does not exist on EventBus {bus}.")
EVENT_BUS_NOT_FOUND = Message(LogsResourceNotFound, "Event bus {bus} does not exist.")
RULE_HAS_TARGETS = Message(ValidationError, "Rule can't be deleted since it has targets.")
RULE_NEEDS_PATTERN_OR_SCHEDULE = Message(
    ValidationError, "Parameter(s) EventPattern or ScheduleExpression must be specified.", INFERRED
)
SCHEDULE_INVALID = Message(ValidationError, "Parameter ScheduleExpression is not valid.")
EVENT_INVALID = Message(ValidationError, "Parameter Event is not valid.")
EVENT_PATTERN_INVALID = Message(InvalidEventPattern, "Event pattern is not valid. Reason: {reason}")
TARGET_ONE_INPUT = Message(
    ValidationError,
    "Only one of Input, InputPath, or InputTransformer must be provided for target {target}.",
)
TARGET_INPUT_NOT_JSON = Message(ValidationError, "Input is not valid JSON.", INFERRED)
TARGET_INPUT_PATH = Message(ValidationError, "Invalid InputPath: {path}", INFERRED)
TARGETS_LIMIT = Message(LimitExceeded, "The requested resource exceeds the maximum number allowed.")
NEXT_TOKEN_INVALID = Message(ValidationError, "The NextToken provided is not valid.", INFERRED)


def table() -> dict[str, Message]:
    """Every message above, by name (for the tests that check the table against the model)."""
    module = sys.modules[__name__]
    return {name: value for name, value in vars(module).items() if isinstance(value, Message)}
