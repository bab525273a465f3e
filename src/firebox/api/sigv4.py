"""Verify AWS Signature Version 4 on incoming requests, with botocore's own signer.

Verification is in two steps, so that nothing of a body is read before the request is
known to come from a known key within the allowed clock skew (``check_headers``); the
signature over the body follows (``check_signature``). We rebuild the request from the
signed headers only, take the time from X-Amz-Date and the region and service from the
credential scope, compute the signature exactly as the client did and compare in constant
time. botocore's signer methods are not a documented
API; tests sign with boto3 and verify here, so an incompatible botocore fails loudly.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from firebox.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z")
_UNSIGNABLE = frozenset(SIGNED_HEADERS_BLACKLIST)
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


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


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """What a request's headers claim, checked before its body is read: the form of the
    Authorization header, a known access key, the date and the clock skew."""

    caller: Caller
    secret: str
    amz_date: str
    credential: list[str]
    signature: str
    # The signed headers, by lower-cased name.
    picked: dict[str, str]


def check_headers(
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    max_skew_s: int = 900,
) -> SignedHeaders:
    """Everything about a signature that can be known without the body; raises the AWS
    auth error otherwise. Nothing of the body is read before this passes."""
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
    # Parsed by hand: strptime costs a third of a verification.
    m = _AMZ_DATE.fullmatch(amz_date)
    try:
        if m is None:
            raise ValueError(amz_date)
        y, mo, d, hh, mi, ss = (int(g) for g in m.groups())
        when = datetime(y, mo, d, hh, mi, ss, tzinfo=UTC)
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
    claimed = picked.get("x-amz-content-sha256")
    if claimed is not None and not _SHA256_HEX.fullmatch(claimed):
        # UNSIGNED-PAYLOAD and the STREAMING-* forms leave the body unsigned: AWS's SDKs
        # never send them over plain HTTP (botocore signs every payload there), which is
        # all this server speaks.
        raise InvalidSignature(
            f"x-amz-content-sha256 must be the SHA-256 of the payload, not {claimed[:64]!r}"
        )
    return SignedHeaders(
        Caller(access_key, region, service), secret, amz_date, credential, signature, picked
    )


def check_signature(
    signed: SignedHeaders, method: str, raw_path: str, body: bytes, payload_hash: str
) -> Caller:
    """Check the signature over the request and its body; ``payload_hash`` is the hex
    SHA-256 of ``body`` (the caller computes it, off the loop for a large body)."""
    claimed = signed.picked.get("x-amz-content-sha256")
    if claimed is not None and not hmac.compare_digest(claimed.lower(), payload_hash):
        # The signature covers this header, not the body: without this check a signed
        # request could be replayed with any other body.
        raise InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    picked, secret, credential = signed.picked, signed.secret, signed.credential
    # The canonical request carries the header's own spelling of the hash when it is signed.
    canonical_hash = claimed if claimed is not None else payload_hash
    fast = _fast_signature(
        method, raw_path, picked, canonical_hash, secret, signed.amz_date, credential
    )
    if fast is not None and hmac.compare_digest(fast, signed.signature):
        return signed.caller
    request = AWSRequest(
        method=method, url=f"http://{picked['host']}{raw_path}", headers=picked, data=body
    )
    request.context["timestamp"] = signed.amz_date
    signer = _KnownPayloadSigner(
        Credentials(signed.caller.access_key_id, secret),
        signed.caller.service,
        signed.caller.region,
        payload_hash,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signed.signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details."
        )
    return signed.caller


def verify(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    max_skew_s: int = 900,
) -> Caller:
    """Check a request's signature; return who signed it or raise an AWS auth error."""
    signed = check_headers(headers, secret_for, max_skew_s)
    return check_signature(signed, method, raw_path, body, hashlib.sha256(body).hexdigest())


class _KnownPayloadSigner(SigV4Auth):
    """botocore's signer, told the payload's hash instead of hashing the body again."""

    def __init__(
        self, credentials: Credentials, service: str, region: str, payload_hash: str
    ) -> None:
        super().__init__(credentials, service, region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def _fast_signature(
    method: str,
    raw_path: str,
    picked: dict[str, str],
    payload_hash: str,
    secret: str,
    amz_date: str,
    credential: list[str],
) -> str | None:
    """The signature botocore's signer computes, for the common request it is sure of (no
    query string, no dot segments or double slashes, no header botocore never signs);
    None otherwise. It costs a fifth of the general path, which stays the reference: a
    request this does not match is still checked there."""
    if (
        "?" in raw_path
        or not raw_path.startswith("/")
        or "//" in raw_path
        or "/./" in raw_path
        or "/../" in raw_path
        or raw_path.endswith(("/.", "/.."))
        or not _UNSIGNABLE.isdisjoint(picked)
    ):
        return None
    names = sorted(picked)
    canonical = "\n".join(
        [
            method.upper(),
            # SigV4 (outside S3) encodes the already-encoded path once more.
            quote(raw_path, safe="/~"),
            "",
            "".join(f"{n}:{' '.join(picked[n].split())}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    day, region, service, terminator = credential[1:]
    scope = f"{day}/{region}/{service}/{terminator}"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _signing_key(secret, day, region, service, terminator)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# A pure function of its arguments, memoised: the key changes once a day per credential,
# and deriving it (four HMACs) is a third of the fast path's cost.
@functools.lru_cache(maxsize=64)
def _signing_key(secret: str, day: str, region: str, service: str, terminator: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, terminator):
        key = hmac.digest(key, part.encode(), "sha256")
    return key
