"""Sources that push to Firebox: S3 object events and SNS messages. Each notification
becomes an asynchronous invoke (the durable queue: retried and dead-lettered like any),
queued before the sender gets its 2xx, so an acknowledged notification is never lost.

Where they post: ``{public URL}/_firebox/push/{s3|sns}/{mapping UUID}/{secret}`` (the
public URL is ``FIREBOX_PUBLIC_URL``, by default the address the API listens on). The
secret, made per mapping, is the only key to that path; SNS messages must also carry a
valid SNS signature.

- S3 (``arn:aws:s3:::BUCKET``, the store at ``AWS_ENDPOINT_URL_S3``): Firebox creates a
  topic on the store (radosgw's SNS-compatible topic API, on the S3 endpoint) with an
  HTTP push endpoint and ``persistent=true`` (the store commits a notification with the
  object write and retries it until Firebox acknowledges it: an object written while
  Firebox is down is delivered once it is back), and adds a notification configuration
  for every ObjectCreated / ObjectRemoved event of the bucket to the bucket's own ones.
  FilterCriteria choose among them (e.g. on ``eventName`` and ``s3.object.key``).
- SNS (``arn:aws:sns:REGION:ACCOUNT:TOPIC``, real SNS or the server at
  ``AWS_ENDPOINT_URL_SNS``): Firebox subscribes its endpoint (HTTP or HTTPS, as the public
  URL is) and confirms the subscription itself when SNS asks. A message whose signature
  does not verify is refused; the signing certificate is fetched only from AWS's own
  ``sns.<region>.amazonaws.com`` over HTTPS, or from the configured SNS endpoint.

Deleting the mapping removes the topic and the bucket's configuration, or the
subscription (through the teardown records, retried until the source takes it).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlsplit

from firebox.arn import FunctionRef, parse_function_ref
from firebox.control.event_sources import ESM
from firebox.errors import AccessDenied, InvalidRequestContent, PushRefused
from firebox.settings import Settings
from firebox.store.metadata.base import Doc, MetadataStore
from firebox.triggers.aws import AwsClients, mapping_credentials, parse_arn, signed_headers
from firebox.triggers.patterns import matches

log = logging.getLogger(__name__)

S3_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
_SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


def _filters(mapping: Doc) -> list[Doc]:
    out = []
    for f in (mapping.get("FilterCriteria") or {}).get("Filters") or []:
        try:
            out.append(json.loads(f["Pattern"]))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def s3_record(raw: Doc, region: str) -> Doc:
    """A store's notification record (radosgw: ``ceph:s3``) in AWS's S3 event shape."""
    s3 = raw.get("s3") or {}
    bucket = s3.get("bucket") or {}
    obj = s3.get("object") or {}
    name = str(raw.get("eventName", "")).removeprefix("s3:")
    # AWS sends keys URL-encoded (spaces as +); radosgw sends them as written.
    key = quote_plus(unquote_plus(str(obj.get("key", ""))), safe="/")
    out_obj: Doc = {"key": key}
    if name.startswith("ObjectCreated"):
        out_obj["size"] = int(obj.get("size") or 0)
        out_obj["eTag"] = str(obj.get("eTag") or obj.get("etag") or "")
    if obj.get("versionId"):
        out_obj["versionId"] = obj["versionId"]
    out_obj["sequencer"] = str(obj.get("sequencer") or "")
    bucket_name = str(bucket.get("name", ""))
    owner = (bucket.get("ownerIdentity") or {}).get("principalId", "")
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": raw.get("eventTime", ""),
        "eventName": name,
        "userIdentity": {"principalId": (raw.get("userIdentity") or {}).get("principalId", "")},
        "requestParameters": {
            "sourceIPAddress": (raw.get("requestParameters") or {}).get("sourceIPAddress", "")
        },
        "responseElements": {
            "x-amz-request-id": (raw.get("responseElements") or {}).get("x-amz-request-id", ""),
            "x-amz-id-2": (raw.get("responseElements") or {}).get("x-amz-id-2", ""),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": s3.get("configurationId", ""),
            "bucket": {
                "name": bucket_name,
                "ownerIdentity": {"principalId": owner},
                "arn": f"arn:aws:s3:::{bucket_name}",
            },
            "object": out_obj,
        },
    }


def _delete_notification(s3: Any, mapping: Doc, bucket: str, notification: str) -> None:
    """radosgw's own call (``DELETE /BUCKET?notification=ID``), which boto3 does not have."""
    import urllib.request

    url = (
        f"{str(s3.meta.endpoint_url).rstrip('/')}/{bucket}?notification={quote_plus(notification)}"
    )
    headers = signed_headers(mapping, "DELETE", url, "s3", s3.meta.region_name, s3=True)
    with urllib.request.urlopen(
        urllib.request.Request(url, method="DELETE", headers=headers), timeout=10
    ):
        pass


def string_to_sign(message: Doc) -> str:
    """What SNS signs for a message of this Type (AWS's documented field order)."""
    fields = _NOTIFICATION_FIELDS if message.get("Type") == "Notification" else _CONFIRMATION_FIELDS
    return "".join(f"{k}\n{message[k]}\n" for k in fields if message.get(k) is not None)


class Push:
    def __init__(
        self,
        settings: Settings,
        aws: AwsClients,
        metadata: MetadataStore,
        submit: Callable[[FunctionRef, bytes], Awaitable[str]],
        report: Callable[[str, str], None],
    ) -> None:
        self.settings = settings
        self.aws = aws
        self.metadata = metadata
        self.submit = submit
        self.report = report  # (mapping UUID, LastProcessingResult)
        self._certs: dict[str, Any] = {}

    def endpoint(self, mapping: Doc) -> str:
        base = (self.settings.public_url or self.settings.endpoint_url).rstrip("/")
        return f"{base}/_firebox/push/{mapping['_kind']}/{mapping['UUID']}/{mapping['_secret']}"

    # --- set-up on the source (blocking: the control plane's thread, or the AWS threads)

    def set_up(self, mapping: Doc) -> None:
        if mapping["_kind"] == "s3":
            self._s3_set_up(mapping)
        elif mapping["_kind"] == "sns":
            self._sns_set_up(mapping)

    def tear_down(self, mapping: Doc) -> None:
        if mapping["_kind"] == "s3":
            self._s3_tear_down(mapping)
        elif mapping["_kind"] == "sns":
            self._sns_tear_down(mapping)

    def _s3_clients(self, mapping: Doc) -> tuple[Any, Any]:
        s3 = self.aws.client("s3", "", mapping_credentials(mapping))
        # radosgw serves its topic API on the S3 endpoint itself.
        topics = self.aws.client(
            "sns", s3.meta.region_name, mapping_credentials(mapping), s3.meta.endpoint_url
        )
        return s3, topics

    def _s3_set_up(self, mapping: Doc) -> None:
        s3, topics = self._s3_clients(mapping)
        bucket = mapping["EventSourceArn"].rsplit(":", 1)[1]
        topic = topics.create_topic(
            Name=f"firebox-{mapping['UUID']}",
            Attributes={
                "push-endpoint": self.endpoint(mapping),
                "persistent": "true",
                "OpaqueData": mapping["UUID"],
            },
        )["TopicArn"]
        mapping["_topic"] = topic
        config = s3.get_bucket_notification_configuration(Bucket=bucket)
        config.pop("ResponseMetadata", None)
        ours = f"firebox-{mapping['UUID']}"
        topics_config = [c for c in config.get("TopicConfigurations") or [] if c.get("Id") != ours]
        topics_config.append({"Id": ours, "TopicArn": topic, "Events": S3_EVENTS})
        config["TopicConfigurations"] = topics_config
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)

    def _s3_tear_down(self, mapping: Doc) -> None:
        from botocore.exceptions import ClientError

        s3, topics = self._s3_clients(mapping)
        bucket = mapping["EventSourceArn"].rsplit(":", 1)[1]
        ours = f"firebox-{mapping['UUID']}"
        try:
            config = s3.get_bucket_notification_configuration(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucket":
                raise
        else:
            config.pop("ResponseMetadata", None)
            kept = [c for c in config.get("TopicConfigurations") or [] if c.get("Id") != ours]
            if len(kept) != len(config.get("TopicConfigurations") or []):
                config["TopicConfigurations"] = kept
                try:
                    s3.put_bucket_notification_configuration(
                        Bucket=bucket, NotificationConfiguration=config
                    )
                except ClientError as exc:
                    # radosgw takes no empty configuration: it deletes one by its id.
                    if exc.response["Error"]["Code"] != "MalformedXML":
                        raise
                    _delete_notification(s3, mapping, bucket, ours)
        if mapping.get("_topic"):
            try:
                topics.delete_topic(TopicArn=mapping["_topic"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("NotFound", "NoSuchEntity"):
                    raise

    def _sns_set_up(self, mapping: Doc) -> None:
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        client = self.aws.client("sns", arn.region, mapping_credentials(mapping))
        endpoint = self.endpoint(mapping)
        reply = client.subscribe(
            TopicArn=mapping["EventSourceArn"],
            Protocol="https" if endpoint.startswith("https:") else "http",
            Endpoint=endpoint,
            ReturnSubscriptionArn=True,
        )
        mapping["_subscription"] = reply["SubscriptionArn"]

    def _sns_tear_down(self, mapping: Doc) -> None:
        from botocore.exceptions import ClientError

        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        subscription = mapping.get("_subscription")
        if not subscription or not subscription.startswith("arn:"):
            return  # never confirmed: SNS forgets it by itself
        client = self.aws.client("sns", arn.region, mapping_credentials(mapping))
        try:
            client.unsubscribe(SubscriptionArn=subscription)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NotFound", "InvalidParameter"):
                raise

    # --- notifications ------------------------------------------------------------------

    async def receive(
        self, kind: str, mapping_id: str, secret: str, body: bytes, headers: dict[str, str]
    ) -> int:
        """Take one push: the number of invokes queued. AccessDenied for a wrong path or
        signature, PushRefused (503) while the mapping is disabled."""
        mapping = await asyncio.to_thread(self.metadata.get, ESM, mapping_id)
        if (
            mapping is None
            or mapping.get("_kind") != kind
            or not hmac.compare_digest(str(mapping.get("_secret", "")), secret)
        ):
            raise AccessDenied("Unknown push endpoint")
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequestContent("The notification is not JSON") from None
        if not isinstance(message, dict):
            raise InvalidRequestContent("The notification is not a JSON object")
        if kind == "sns":
            await self._verify(mapping, message)
            if message.get("Type") == "SubscriptionConfirmation":
                await self._confirm(mapping, message)
                return 0
            if message.get("Type") != "Notification":
                return 0
        if mapping.get("State") != "Enabled":
            raise PushRefused("The event source mapping is disabled")
        if kind == "s3":
            records = [s3_record(r, self.settings.region) for r in message.get("Records") or []]
        else:
            records = [self._sns_record(mapping, message, headers)]
        filters = _filters(mapping)
        if filters:
            records = [r for r in records if any(matches(p, r) for p in filters)]
        ref = parse_function_ref(mapping["FunctionArn"])
        for record in records:
            await self.submit(ref, json.dumps({"Records": [record]}).encode())
        self.report(mapping_id, "OK")
        return len(records)

    def _sns_record(self, mapping: Doc, m: Doc, headers: dict[str, str]) -> Doc:
        subscription = headers.get("x-amz-sns-subscription-arn") or mapping.get("_subscription", "")
        return {
            "EventVersion": "1.0",
            "EventSubscriptionArn": subscription,
            "EventSource": "aws:sns",
            "Sns": {
                "SignatureVersion": m.get("SignatureVersion", "1"),
                "Timestamp": m.get("Timestamp", ""),
                "Signature": m.get("Signature", ""),
                "SigningCertUrl": m.get("SigningCertURL", ""),
                "MessageId": m.get("MessageId", ""),
                "Message": m.get("Message", ""),
                "MessageAttributes": m.get("MessageAttributes") or {},
                "Type": m.get("Type", "Notification"),
                "UnsubscribeUrl": m.get("UnsubscribeURL", ""),
                "TopicArn": m.get("TopicArn", ""),
                "Subject": m.get("Subject"),
            },
        }

    async def _confirm(self, mapping: Doc, message: Doc) -> None:
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        client = await self.aws.make("sns", arn.region, mapping_credentials(mapping))
        reply = await self.aws.call(
            client,
            "confirm_subscription",
            TopicArn=mapping["EventSourceArn"],
            Token=message["Token"],
        )
        log.info("SNS subscription %s confirmed", reply.get("SubscriptionArn"))

    async def _verify(self, mapping: Doc, message: Doc) -> None:
        """AccessDenied unless the message is signed by SNS for this mapping's topic."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if message.get("TopicArn") != mapping["EventSourceArn"]:
            raise AccessDenied("The message is not from the mapping's topic")
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
            cert_url = str(message["SigningCertURL"])
        except (KeyError, ValueError):
            raise AccessDenied("The message is not signed") from None
        key = await self._certificate(mapping, cert_url)
        algorithm = hashes.SHA1() if message.get("SignatureVersion") == "1" else hashes.SHA256()
        try:
            key.verify(signature, string_to_sign(message).encode(), padding.PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError, TypeError):
            raise AccessDenied("The message's signature does not verify") from None

    async def _certificate(self, mapping: Doc, url: str) -> Any:
        """The public key of SNS's signing certificate at ``url``."""
        from cryptography import x509

        parts = urlsplit(url)
        if (
            parts.scheme != "https"
            or not _SNS_CERT_HOST.match(parts.hostname or "")
            or not parts.path.endswith(".pem")
            or parts.query
        ):
            raise AccessDenied("The signing certificate is not SNS's")
        arn = parse_arn(mapping["EventSourceArn"])
        assert arn is not None
        client = await self.aws.make("sns", arn.region, mapping_credentials(mapping))
        endpoint = str(client.meta.endpoint_url).rstrip("/")
        host = urlsplit(endpoint).hostname or ""
        # Real SNS: the URL as given (its host is checked above). A server named by
        # AWS_ENDPOINT_URL_SNS serves its own certificates: fetched from it, only.
        fetch = url if host.endswith(".amazonaws.com") else endpoint + parts.path
        key = self._certs.get(fetch)
        if key is not None:
            return key
        import aiohttp

        headers: dict[str, str] = {}
        if fetch != url:
            # Asked like any call to that server (compatible servers route by signature).
            headers = await self.aws.run(
                signed_headers, mapping, "GET", fetch, "sns", str(client.meta.region_name)
            )
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(fetch, headers=headers) as response,
            ):
                if response.status != 200:
                    raise PushRefused(f"The signing certificate answered {response.status}")
                pem = await response.read()
        except aiohttp.ClientError as exc:
            raise PushRefused(f"The signing certificate could not be fetched: {exc}") from exc
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise AccessDenied("The signing certificate is not a certificate") from None
        if len(self._certs) > 64:
            self._certs.clear()
        self._certs[fetch] = key
        return key
