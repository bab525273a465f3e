"""Clients of AWS services (SQS, SNS, Kinesis, DynamoDB Streams, S3) for event sources and
destinations: boto3, found and authenticated as boto3 finds them.

- Endpoints: real AWS, or whatever the standard variables name
  (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_KINESIS``,
  ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, ``AWS_ENDPOINT_URL_SNS``, ``AWS_ENDPOINT_URL_S3``,
  ``AWS_ENDPOINT_URL``): botocore reads them itself.
- Credentials: the standard chain of the server (environment, shared files, instance
  role …), unless a mapping names its own with
  ``SourceAccessConfigurations=[{"Type": "BASIC_AUTH", "URI": "ACCESS_KEY_ID:SECRET"}]``.

boto3 blocks: its calls run on a thread pool of their own, never on the default executor
that the stores use (an SQS long poll holds its thread for a second).
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from firebox.store.metadata.base import Doc

# Error codes AWS (and compatible servers) answer for credentials it does not accept.
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "AuthorizationError",
        "NotAuthorized",
    }
)
_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:([a-z0-9-]+):([a-z0-9-]*):(\d{12})?:(.+)$")


@dataclass(frozen=True, slots=True)
class Arn:
    service: str
    region: str
    account: str
    resource: str


def parse_arn(arn: str) -> Arn | None:
    m = _ARN.match(arn)
    if m is None:
        return None
    return Arn(m[1], m[2], m[3] or "", m[4])


def mapping_credentials(mapping: Doc) -> tuple[str, str] | None:
    """A mapping's own AWS credentials (BASIC_AUTH "KEY:SECRET"), or None for the chain."""
    for item in mapping.get("SourceAccessConfigurations") or []:
        if item.get("Type") == "BASIC_AUTH":
            key, _, secret = str(item.get("URI", "")).partition(":")
            if key and secret:
                return key, secret
    return None


def signed_headers(
    mapping: Doc, method: str, url: str, service: str, region: str, s3: bool = False
) -> dict[str, str]:
    """SigV4 headers for a request boto3 has no operation for, with the credentials the
    mapping's clients use (its own, or the standard chain's). Blocking (the chain)."""
    import boto3
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    own = mapping_credentials(mapping)
    creds = Credentials(*own) if own else boto3.session.Session().get_credentials()
    request = AWSRequest(method=method, url=url)
    (S3SigV4Auth if s3 else SigV4Auth)(creds, service, region).add_auth(request)
    return dict(request.headers.items())


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


def is_auth_error(exc: BaseException) -> bool:
    return error_code(exc) in AUTH_CODES or type(exc).__name__ in (
        "NoCredentialsError",
        "PartialCredentialsError",
    )


class AwsClients:
    """boto3 clients, one per (service, region, credentials), and the threads they run on."""

    def __init__(self, default_region: str, threads: int = 32) -> None:
        self.default_region = default_region
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="firebox-aws")
        self._clients: dict[tuple[str, str, tuple[str, str] | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def client(
        self,
        service: str,
        region: str = "",
        creds: tuple[str, str] | None = None,
        endpoint_url: str | None = None,
    ) -> Any:
        """A client (thread-safe, cached); blocking only the first time (it loads models).
        ``endpoint_url`` overrides where the standard variables point."""
        key = (service, region, creds, endpoint_url)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            import boto3
            from botocore.config import Config

            # A session per client: boto3's default session is not safe across threads.
            session = boto3.session.Session()
            kwargs: dict[str, Any] = {
                "region_name": region or session.region_name or self.default_region,
                "config": Config(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                    max_pool_connections=64,
                ),
            }
            if creds is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = creds
            if endpoint_url:
                kwargs["endpoint_url"] = endpoint_url
            made = self._clients[key] = session.client(service, **kwargs)
            return made

    async def make(
        self, service: str, region: str = "", creds: tuple[str, str] | None = None
    ) -> Any:
        """``client`` off the loop (the first client of a service reads its model)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self.client, service, region, creds)
        )

    async def call(self, client: Any, operation: str, **params: Any) -> Any:
        """``client.operation(**params)`` on the AWS threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(getattr(client, operation), **params)
        )

    async def run(self, fn: Any, *args: Any) -> Any:
        """Any blocking function of these clients on the AWS threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
