"""A real S3-compatible endpoint for tests: moto's server in its own process."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadwatch.net import free_port
from tests.services import missing, serving_process

REGION = "us-east-1"
ACCESS_KEY_ID = "roadwatch-test"
SECRET_ACCESS_KEY = "roadwatch-test-secret-" + uuid.uuid4().hex


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def new_bucket(self) -> str:
        name = f"rw-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def settings(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """Central's settings (keyword arguments of ``Settings``) for this bucket."""
        return {
            "evidence_store": "s3",
            "s3_endpoint_url": self.endpoint_url,
            "s3_bucket": bucket,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
            "s3_prefix": prefix,
        }


@contextmanager
def moto_server(log: Path) -> Iterator[S3Server]:
    """Run moto's S3 server on a free port until the block ends; stopped within seconds."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        missing("moto[server] is not installed")
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving_process(command, port, log, start_s=30):
        yield S3Server(f"http://127.0.0.1:{port}")
