"""Sign with botocore exactly as boto3 does, verify with ours."""

import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from firebox.api.sigv4 import verify
from firebox.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

KEY, SECRET = "AKIDEXAMPLE000000000", "secret-example"


def signed(method: str, url: str, body: bytes = b"", secret: str = SECRET) -> AWSRequest:
    req = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(KEY, secret), "lambda", "eu-west-1").add_auth(req)
    return req


def check(req: AWSRequest, raw_path: str) -> object:
    from urllib.parse import urlsplit

    # The HTTP client adds Host when it sends; botocore signed it from the URL.
    headers = {"Host": urlsplit(req.url).netloc, **dict(req.headers)}
    return verify(
        req.method, raw_path, headers, req.body or b"", lambda k: SECRET if k == KEY else None
    )


def test_boto3_signature_verifies_including_encoded_arn_in_path():
    path = (
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A000000000000%3Afunction"
        "%3Afn/invocations?Qualifier=%24LATEST"
    )
    req = signed("POST", "http://127.0.0.1:9000" + path, b'{"a": 1}')
    caller = check(req, path)
    assert caller.region == "eu-west-1" and caller.service == "lambda"


def test_wrong_secret_body_or_path_fail():
    path = "/2015-03-31/functions"
    with pytest.raises(InvalidSignature):
        check(signed("GET", "http://h" + path, secret="other"), path)
    req = signed("POST", "http://h" + path, b"{}")
    req.data = b'{"x": 1}'
    with pytest.raises(InvalidSignature):
        check(req, path)
    with pytest.raises(InvalidSignature):
        check(signed("GET", "http://h" + path), path + "/other")


def test_missing_or_unknown_credentials():
    with pytest.raises(MissingAuthenticationToken):
        verify("GET", "/", {}, b"", lambda k: None)
    req = signed("GET", "http://h/")
    with pytest.raises(UnrecognizedClient):
        verify("GET", "/", dict(req.headers), b"", lambda k: None)


@pytest.mark.parametrize(
    "path",
    [
        "/2015-03-31/functions/fn/invocations",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A000000000000%3Afunction%3Afn"
        "/invocations",
        "/2015-03-31/functions/my~fn_x.y-1/invocations",
        "/",
    ],
)
def test_fast_path_computes_botocores_signature(path):
    """verify() answers common requests without botocore's signer; what it computes there
    must be exactly botocore's signature (the one boto3 sent)."""
    from firebox.api.sigv4 import _fast_signature, _parse_authorization

    req = signed("POST", "http://127.0.0.1:9000" + path, b'{"a":  1}')
    headers = {"host": "127.0.0.1:9000", **{k.lower(): v for k, v in req.headers.items()}}
    credential, names, signature = _parse_authorization(headers["authorization"])
    picked = {n: headers[n] for n in names}
    fast = _fast_signature(
        "POST",
        path,
        picked,
        hashlib.sha256(req.body).hexdigest(),
        SECRET,
        headers["x-amz-date"],
        credential,
    )
    assert fast == signature
    assert check(req, path).service == "lambda"
    # Anything else about the request changed: the fast path no longer matches and the
    # general path refuses it.
    req.data = b'{"a": 2}'
    with pytest.raises(InvalidSignature):
        check(req, path)


def test_requests_outside_the_fast_path_still_verify():
    from firebox.api.sigv4 import _fast_signature

    for path in ("/2015-03-31/functions/fn/invocations?Qualifier=1", "/a//b/./c"):
        req = signed("POST", "http://127.0.0.1:9000" + path, b"{}")
        assert _fast_signature("POST", path, {}, "", SECRET, "", []) is None
        assert check(req, path).region == "eu-west-1"


def signed_with_content_sha256(body: bytes, claimed: str) -> AWSRequest:
    """A request that signs x-amz-content-sha256 (as S3-style clients do) with ``claimed``."""
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:9000/2015-03-31/functions/fn/invocations",
        data=body,
        headers={"Content-Type": "application/json", "X-Amz-Content-SHA256": claimed},
    )
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "eu-west-1").add_auth(req)
    return req


def test_signed_content_sha256_must_be_the_bodys_hash():
    path = "/2015-03-31/functions/fn/invocations"
    body = b'{"amount": 1}'
    good = signed_with_content_sha256(body, hashlib.sha256(body).hexdigest())
    assert check(good, path).service == "lambda"
    # Replay: the signature covers the header, and the header still names the old body.
    good.data = b'{"amount": 1000000}'
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256"):
        check(good, path)


@pytest.mark.parametrize("claimed", ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
def test_unsigned_payload_is_refused_over_http(claimed):
    req = signed_with_content_sha256(b'{"anything": "goes"}', claimed)
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256"):
        check(req, "/2015-03-31/functions/fn/invocations")


def test_headers_are_judged_without_the_body():
    from firebox.api.sigv4 import check_headers

    secrets = {KEY: SECRET}.get
    with pytest.raises(MissingAuthenticationToken):
        check_headers({}, secrets)
    with pytest.raises(IncompleteSignature):
        check_headers({"Authorization": "Basic dXNlcjpwYXNz"}, secrets)
    req = signed("POST", "http://h/2015-03-31/functions", b"{}")
    headers = {"Host": "h", **dict(req.headers)}
    with pytest.raises(UnrecognizedClient):
        check_headers(headers, lambda _key: None)
    assert check_headers(headers, secrets).caller.access_key_id == KEY
    stale = {**headers, "X-Amz-Date": "20200101T000000Z"}
    with pytest.raises(InvalidSignature, match="Signature expired"):
        check_headers(stale, secrets)
