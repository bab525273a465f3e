"""Code packages in an S3-compatible bucket, cached content-addressed on each node's disk.

Configured as ``s3://BUCKET[/PREFIX]``; objects are ``PREFIX/SHA256.zip``. The endpoint
and credentials come the standard AWS way (``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, then the credential chain: environment, shared files, instance
roles), read by boto3 itself. A node fetches a package once: the zip is verified against
its SHA-256 before it enters the local cache (a ``FileCodeStore``), and its unpacked tree
is cached beside it. Every call blocks on the network: callers run them in a thread,
never on the event loop. boto3 is an optional dependency (the [s3] extra).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from firebox.store import StoreUnavailable
from firebox.store.code.files import FileCodeStore
from firebox.store.code.zipfiles import open_zip

log = logging.getLogger(__name__)


class CorruptPackage(RuntimeError):
    """A package read from the bucket does not have the SHA-256 it is stored under."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` → (bucket, key prefix ending in "/" or empty)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise StoreUnavailable(
            f"an s3:// code store needs boto3 (pip install 'firebox[s3]'): {exc}"
        ) from None
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # One per executor thread that may fetch at once.
        max_pool_connections=16,
    )
    # A session of its own: boto3's default session is shared, mutable, global state.
    return boto3.session.Session().client("s3", config=config)


class S3CodeStore:
    def __init__(self, url: str, cache: FileCodeStore, client: Any | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.bucket, self._prefix = parse_s3_url(url)
        self._cache = cache
        self._s3 = client if client is not None else _client()
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(
                f"cannot use the code store {url} at {self._s3.meta.endpoint_url}: {exc}"
            ) from None

    def _key(self, sha: str) -> str:
        return f"{self._prefix}{sha}.zip"

    def put(self, data: bytes) -> str:
        open_zip(data)  # raises InvalidParameterValue for what is not a usable zip
        sha = hashlib.sha256(data).hexdigest()
        if not self._exists_remote(sha):
            # In the bucket before the caller records the package anywhere.
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self._key(sha),
                Body=data,
                ContentType="application/zip",
                Metadata={"sha256": sha},
            )
        self._cache.keep(sha, data)
        self._cache.unpacked(sha)
        return sha

    def _exists_remote(self, sha: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(sha))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def _fetch(self, sha: str) -> bytes:
        """The package from the bucket, verified and cached; KeyError if absent."""
        from botocore.exceptions import ClientError

        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=self._key(sha))
            data: bytes = resp["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(sha) from None
            raise
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise CorruptPackage(
                f"s3://{self.bucket}/{self._key(sha)} has SHA-256 {actual}, not {sha}"
            )
        self._cache.keep(sha, data)
        return data

    def get(self, sha256_hex: str) -> bytes:
        if self._cache.exists(sha256_hex):
            return self._cache.get(sha256_hex)
        return self._fetch(sha256_hex)

    def exists(self, sha256_hex: str) -> bool:
        return self._cache.exists(sha256_hex) or self._exists_remote(sha256_hex)

    def unpacked(self, sha256_hex: str) -> Path:
        if not self._cache.exists(sha256_hex):
            self._fetch(sha256_hex)
        return self._cache.unpacked(sha256_hex)

    def delete(self, sha256_hex: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self._key(sha256_hex))
        self._cache.delete(sha256_hex)

    def sweep_partial(self) -> None:
        self._cache.sweep_partial()
