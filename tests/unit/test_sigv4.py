"""Sign with botocore exactly as boto3 does, verify with ours."""

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from firebox.api.sigv4 import verify
from firebox.errors import InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

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
