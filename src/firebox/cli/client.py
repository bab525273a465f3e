"""How the command line finds a Firebox server and signs its requests, as AWS tools do.

Endpoint: --endpoint-url, else what botocore resolves (AWS_ENDPOINT_URL, a profile's
endpoint_url), else the local server from Firebox's settings (http://127.0.0.1:9000).
Credentials: the AWS chain (environment, profiles, …) through boto3's Session, else the
local server's generated credentials in its data dir. Imported only by client commands:
it pulls in boto3, which ``firebox serve`` does not need.
"""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.exceptions
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from firebox.cli.output import fail
from firebox.settings import SettingsError, load_settings


@dataclass(slots=True)
class Connection:
    endpoint_url: str
    region: str
    credentials: Credentials
    session: boto3.Session

    def client(self, service: str, read_timeout_s: int = 900) -> Any:
        creds = self.credentials
        return self.session.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.token,
            # One attempt: a person at a terminal wants the error now, not after retries.
            config=Config(
                retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=read_timeout_s
            ),
        )

    def signed_get(self, path: str, query: dict[str, str] | None = None) -> Any:
        """GET one of Firebox's own JSON endpoints, signed with SigV4 like the Lambda API."""
        url = self.endpoint_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(self.credentials, "lambda", self.region).add_auth(req)
        prepared = urllib.request.Request(url, headers=dict(req.headers.items()))
        try:
            with urllib.request.urlopen(prepared, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = {}
            code = exc.headers.get("x-amzn-ErrorType") or body.get("__type") or exc.code
            fail(f"{code}: {body.get('message') or body.get('Message') or exc.reason}")
        except (urllib.error.URLError, OSError):
            self.unreachable()

    def unreachable(self) -> NoReturn:
        fail(f"cannot reach Firebox at {self.endpoint_url} — is `firebox serve` running?")


def connect(
    endpoint_url: str | None, profile: str | None, region: str | None, data_dir: Path | None
) -> Connection:
    try:
        settings = load_settings({"data_dir": data_dir})
    except SettingsError as exc:
        fail(str(exc))
    try:
        session = boto3.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound as exc:
        fail(str(exc))
    region = region or session.region_name or settings.region
    local = False
    if endpoint_url is None:
        # Let botocore resolve AWS_ENDPOINT_URL / the profile's endpoint_url; AWS's own
        # endpoint means none was configured, so the local server is meant.
        probe = session.client(
            "lambda", region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
        )
        resolved = probe.meta.endpoint_url
        if ".amazonaws.com" in resolved:
            endpoint_url, local = settings.endpoint_url, True
        else:
            endpoint_url = resolved
    from firebox.credentials import load_credentials

    local_creds = load_credentials(settings, create=False)
    chain = session.get_credentials()
    if local and local_creds is not None:
        # No endpoint configured: the server on this machine, with its own credentials.
        creds = Credentials(local_creds.access_key_id, local_creds.secret_access_key)
    elif chain is not None:
        frozen = chain.get_frozen_credentials()
        creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    elif local_creds is not None:
        creds = Credentials(local_creds.access_key_id, local_creds.secret_access_key)
    else:
        fail(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile), "
            f"or run where the server keeps them ({settings.data_dir / 'credentials.json'})"
        )
    return Connection(endpoint_url, region, creds, session)


@contextlib.contextmanager
def aws_errors(conn: Connection) -> Iterator[None]:
    """botocore's exceptions as one line each."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        fail(f"{err.get('Code', 'Error')}: {err.get('Message', str(exc))}")
    except botocore.exceptions.WaiterError as exc:
        fail(f"gave up waiting: {exc.last_response.get('Error', {}).get('Message') or exc}")
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        ConnectionRefusedError,
        socket.gaierror,
    ):
        conn.unreachable()
    except botocore.exceptions.ReadTimeoutError:
        fail(f"Firebox at {conn.endpoint_url} did not answer in time")
    except botocore.exceptions.ParamValidationError as exc:
        fail(str(exc).replace("\n", " "))
    except botocore.exceptions.BotoCoreError as exc:
        fail(str(exc))
