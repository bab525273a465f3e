"""Verify AWS Signature Version 4 on incoming requests, with botocore's own signer.

We rebuild the request from the signed headers only, take the time from X-Amz-Date and
the region and service from the credential scope, compute the signature exactly as the
client did and compare in constant time. botocore's signer methods are not a documented
API; tests sign with boto3 and verify here, so an incompatible botocore fails loudly.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from firebox.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Caller:
    access_key_id: str
    region: str
    service: str


def _parse_authorization(value: str) -> tuple[list[str], list[str], str]:
    if not value.startswith(ALGORITHM + " "):
        raise IncompleteSignature(f"Authorization header requires the {ALGORITHM} algorithm")
    parts: dict[str, str] = {}
    for item in value[len(ALGORITHM) + 1 :].split(","):
        key, _, val = item.strip().partition("=")
        parts[key] = val
    try:
        credential = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except KeyError as exc:
        raise IncompleteSignature(
            f"Authorization header requires '{exc.args[0]}' parameter."
        ) from None
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise IncompleteSignature("Credential should be scoped to a valid region and service.")
    return credential, signed, signature


def verify(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    max_skew_s: int = 900,
) -> Caller:
    """Check a request's signature; return who signed it or raise an AWS auth error."""
    auth = headers.get("Authorization")
    if not auth:
        raise MissingAuthenticationToken("Missing Authentication Token")
    credential, signed_headers, signature = _parse_authorization(auth)
    access_key, day, region, service, _ = credential
    secret = secret_for(access_key)
    if secret is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise IncompleteSignature("Authorization header requires existence of X-Amz-Date")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature(f"Invalid X-Amz-Date: {amz_date}") from None
    now = datetime.now(UTC)
    if abs((now - when).total_seconds()) > max_skew_s:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is now earlier than "
            f"{now:%Y%m%dT%H%M%SZ} - {max_skew_s // 60} min."
        )
    if day != amz_date[:8]:
        raise InvalidSignature("Credential date does not match X-Amz-Date")
    if "host" not in signed_headers:
        raise InvalidSignature("'Host' must be a signed header")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        picked = {h: lowered[h] for h in signed_headers}
    except KeyError as exc:
        raise InvalidSignature(f"Signed header {exc.args[0]} is missing") from None
    request = AWSRequest(
        method=method, url=f"http://{picked['host']}{raw_path}", headers=picked, data=body
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details."
        )
    return Caller(access_key, region, service)
