"""The evidence store on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).

An upload is spooled and verified locally (see ``central.evidence.spool``) and then sent
with one ``PutObject`` carrying its ``Content-MD5``: the object store refuses a body that
changed on the way, and an object becomes visible under its key only once it is whole.
So nothing but a verified blob ever exists under a blob's key. Blocking client calls run
in worker threads; the client has bounded timeouts and retries.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from central.evidence import (
    CHUNK,
    SPOOL_IN_MEMORY,
    Spooled,
    StoredBlob,
    StoreUnavailableError,
    blob_name,
    checked_file,
    intact,
    spool,
)
from roadwatch.errors import UserError

if TYPE_CHECKING:
    from central.settings import Settings

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class S3Store:
    """Blobs under ``<prefix>ab/cd/<sha256>`` in one bucket."""

    def __init__(
        self, client: Any, bucket: str, *, prefix: str, spool_dir: Path, where: str
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._spool = spool_dir
        self._where = where

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        assert settings.s3_bucket is not None  # checked by the settings
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": settings.s3_addressing_style.value},
            # Content-MD5 protects the body; no extra checksum headers, which some
            # S3-compatible stores refuse.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        return cls(
            client,
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            spool_dir=settings.resolved_evidence_dir / "tmp",
            where=settings.evidence_location,
        )

    @property
    def spool_dir(self) -> Path:
        return self._spool

    def key(self, sha256: str) -> str:
        return self.prefix + blob_name(sha256)

    def check(self) -> None:
        """The bucket exists and these credentials may use it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in NOT_FOUND:
                raise UserError(
                    f"evidence store {self._where}: bucket '{self.bucket}' does not exist "
                    "(create it, or fix ROADWATCH_S3_BUCKET)"
                ) from exc
            if code in {"403", "AccessDenied", "Forbidden"}:
                raise UserError(
                    f"evidence store {self._where}: access to bucket '{self.bucket}' denied; "
                    "check ROADWATCH_S3_ACCESS_KEY_ID and ROADWATCH_S3_SECRET_ACCESS_KEY"
                ) from exc
            raise UserError(f"evidence store {self._where}: {exc}") from exc
        except BotoCoreError as exc:
            raise UserError(
                f"evidence store {self._where} cannot be reached: {exc} "
                "(check ROADWATCH_S3_ENDPOINT_URL and ROADWATCH_S3_REGION)"
            ) from exc

    def _size(self, sha256: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return None
            raise StoreUnavailableError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        return int(head["ContentLength"])

    def exists(self, sha256: str) -> bool:
        return self._size(sha256) is not None

    async def put(self, sha256: str, chunks: AsyncIterator[bytes], limit: int) -> StoredBlob:
        # The body is checked even when the blob is stored: a wrong body is refused, and
        # a stored copy that no longer hashes to its name is replaced by the sound one.
        key = self.key(sha256)
        spooled = await spool(sha256, chunks, limit, self._spool)
        try:
            if await anyio.to_thread.run_sync(intact, self, sha256):
                return StoredBlob(sha256, spooled.size, created=False)
            await anyio.to_thread.run_sync(self.send, key, spooled)
        finally:
            spooled.path.unlink(missing_ok=True)
        return StoredBlob(sha256, spooled.size, created=True)

    def send(self, key: str, spooled: Spooled) -> None:
        """Publish a spooled upload under ``key``; the store checks its ``Content-MD5``."""
        try:
            with spooled.path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=spooled.size,
                    ContentMD5=base64.b64encode(spooled.md5).decode("ascii"),
                )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def open_checked(self, sha256: str) -> IO[bytes] | None:
        # Downloaded once, into memory or (past SPOOL_IN_MEMORY) a nameless file in the
        # spool folder, and served from there: the bytes checked are the bytes served.
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        copy = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (returned open)
            max_size=SPOOL_IN_MEMORY, dir=str(self.spool_dir)
        )
        try:
            for chunk in self.read(sha256):
                copy.write(chunk)
            copy.seek(0)
        except BaseException:
            copy.close()
            raise
        return checked_file(copy, sha256)

    def read(self, sha256: str) -> Iterator[bytes]:
        key = self.key(sha256)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:  # (removed since it was looked for)
                raise FileNotFoundError(key) from exc
            raise StoreUnavailableError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        try:
            yield from body.iter_chunks(CHUNK)
        except (BotoCoreError, OSError) as exc:  # the connection broke off mid-body
            raise StoreUnavailableError(f"reading {key} broke off: {exc}") from exc
        finally:
            body.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
