"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode (`python -m moto.server`;
the `test` extras bring moto[s3] and flask) in a process of its own, on a free port, for the whole run.

Debian has no S3 server that runs alone (radosgw needs a Ceph cluster), so moto it is. Outside CI a
test that needs it is skipped when it cannot start; in CI (CI set) it fails instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

IN_CI = bool(os.environ.get("CI"))
START_SECONDS = 60


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str = "namjai-test"
    secret_key: str = "namjai-test-secret"
    region: str = "us-east-1"

    def create_bucket(self) -> str:
        name = f"namjai-{uuid.uuid4().hex[:12]}"
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        return name

    def raw_get(self, bucket: str, path: str) -> tuple[int, dict, bytes]:
        """An object as S3 serves it (status, headers, body), read with another client (boto3, which
        moto brings) than the store under test."""
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )
        try:
            got = client.get_object(Bucket=bucket, Key=path)
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"], {}, b""
        finally:
            client.close()
        return 200, {"Content-Type": got["ContentType"]}, got["Body"].read()

    def env(self, bucket: str, prefix: str = "photos") -> dict[str, str]:
        """The settings that point Namjai at `bucket` (as environment variables)."""
        return {
            "NAMJAI_PHOTO_STORE": f"s3://{bucket}/{prefix}",
            "NAMJAI_S3_ENDPOINT": self.endpoint,
            "NAMJAI_S3_REGION": self.region,
            "NAMJAI_S3_ACCESS_KEY": self.access_key,
            "NAMJAI_S3_SECRET_KEY": self.secret_key,
        }

    def settings(self, bucket: str, prefix: str = "photos") -> dict:
        """The same as keyword arguments of `bot.settings.Settings`."""
        return {k.removeprefix("NAMJAI_").lower(): v for k, v in self.env(bucket, prefix).items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(why: str):
    if IN_CI:
        pytest.fail(f"the S3 test server is required in CI: {why}")
    pytest.skip(f"no S3 test server: {why}")


@pytest.fixture(scope="session")
def s3_server():
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        _unavailable(f"moto[s3] and flask are not installed ({e})")
    log = tempfile.TemporaryFile()
    proc = None
    for _ in range(3):  # the port was free a moment ago; another process may take it first
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            proc.wait(10)
            continue
        break
    if proc is None or proc.poll() is not None:
        log.seek(0)
        _unavailable(log.read().decode(errors="replace")[-500:] or "moto.server did not start")
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture
def bucket(s3_server) -> str:
    """A new, empty bucket of the test's own."""
    return s3_server.create_bucket()
