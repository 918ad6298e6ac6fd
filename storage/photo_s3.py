"""The photo store on an S3-compatible bucket, which every replica on every host shares.

Chosen by `NAMJAI_PHOTO_STORE=s3://bucket/prefix` (see `storage.photos.open_store`). The client is
obstore (the Rust `object_store` crate of Apache Arrow): one wheel, no Python dependency. Its
blocking calls run in a thread pool of our own, never its `*_async` calls: those hand the result
back from a Tokio thread through `call_soon_threadsafe`, and a process that exits just after one
(a CLI command, a replica stopping) was aborted about one time in ten, the Tokio thread taking the
GIL again while the interpreter was finalizing.
Path-style requests (`ENDPOINT/bucket/key`), which AWS S3, MinIO, Garage, SeaweedFS, Ceph RGW and
moto all take.

Layout under the prefix: `<key>` for a photo or voice note (content-addressed: the same bytes, the
same key, written once more at most), `deleted/<key>` for the marker that a key was deleted on
purpose (PDPA retention; it holds the deletion time, never the photo).

The credentials need GetObject, PutObject, DeleteObject and ListBucket on the prefix: without
ListBucket, S3 answers a missing key with 403 instead of 404, and a missing photo could not be told
from refused credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from storage.photos import (
    KEY_RE,
    PhotoDeleted,
    PhotoMissing,
    PhotoStoreError,
    StoredPhoto,
    media_type,
    prepare_image,
    validate_key,
    voice_extension,
)

# S3's bucket naming rules (3-63 characters, lower case, digits, dots and hyphens).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
DELETED = "deleted/"
CHECK_KEY = ".namjai-check"  # never written: `check` reads it to see the bucket answer


def parse_store_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` as `(bucket, "some/prefix")`; PhotoStoreError when malformed."""
    parts = urlsplit(url.strip())
    if parts.scheme != "s3":
        raise PhotoStoreError(f"NAMJAI_PHOTO_STORE: {url!r} is not s3://bucket/prefix (unset it for the local folder NAMJAI_PHOTO_DIR)")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise PhotoStoreError(f"NAMJAI_PHOTO_STORE: {bucket!r} is not a bucket name (3-63 characters: a-z, 0-9, '.', '-')")
    if parts.query or parts.fragment or (prefix and (not PREFIX_RE.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/")))):
        raise PhotoStoreError(f"NAMJAI_PHOTO_STORE: prefix {prefix!r} may hold only A-Z, a-z, 0-9, '.', '_', '-' and '/'")
    return bucket, prefix


# Blocking S3 calls (the GIL released while they wait), bounded by the client's timeouts. The pool's
# threads are Python threads: joined at exit, before the interpreter finalizes.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="namjai-s3")


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_POOL, lambda: fn(*args, **kwargs))


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class S3PhotoStore:
    """`PhotoStore` on an S3-compatible bucket (see the module's docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        **prepare_kwargs: Any,
    ) -> None:
        self.bucket, self.prefix, self.endpoint = bucket, prefix, endpoint
        self._prepare_kwargs = prepare_kwargs
        config: dict[str, Any] = {"virtual_hosted_style_request": False}
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        if access_key and secret_key:
            config["access_key_id"], config["secret_access_key"] = access_key, secret_key
        self._store = S3Store(
            bucket,
            prefix=prefix or None,
            client_options={
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
                "timeout": timedelta(seconds=30),
            },
            # A few quick retries: a send that waits on the store is retried by the outbox anyway.
            retry_config={
                "max_retries": 3,
                "retry_timeout": timedelta(seconds=15),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
            },
            **config,
        )

    @classmethod
    def from_settings(cls, url: str, settings: Any) -> "S3PhotoStore":
        """From `NAMJAI_PHOTO_STORE` and the `NAMJAI_S3_*` settings; PhotoStoreError (one line) when bad."""
        bucket, prefix = parse_store_url(url)
        endpoint = (getattr(settings, "s3_endpoint", None) or "").strip().rstrip("/") or None
        if endpoint:
            e = urlsplit(endpoint)
            if e.scheme not in ("http", "https") or not e.hostname or e.path not in ("", "/") or e.query:
                raise PhotoStoreError(f"NAMJAI_S3_ENDPOINT: {endpoint!r} is not http(s)://host[:port]")
            try:
                e.port
            except ValueError:
                raise PhotoStoreError(f"NAMJAI_S3_ENDPOINT: {endpoint!r} has a bad port") from None
        region = (getattr(settings, "s3_region", None) or "").strip() or None
        access = _secret(getattr(settings, "s3_access_key", None))
        secret = _secret(getattr(settings, "s3_secret_key", None))
        if bool(access) != bool(secret):
            missing = "NAMJAI_S3_SECRET_KEY" if access else "NAMJAI_S3_ACCESS_KEY"
            raise PhotoStoreError(f"{missing}: set both S3 keys, or neither (then AWS_* variables or the host's role are used)")
        try:
            return cls(bucket, prefix, endpoint=endpoint, region=region, access_key=access, secret_key=secret)
        except Exception as e:  # the client refused the configuration
            raise PhotoStoreError(f"NAMJAI_PHOTO_STORE: the S3 client refused the settings: {_first_line(e)}") from None

    def __repr__(self) -> str:  # never the keys
        return f"S3PhotoStore({self.where})"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")

    # -- errors ----------------------------------------------------------------

    def _error(self, op: str, exc: BaseException) -> PhotoStoreError:
        if isinstance(exc, PhotoStoreError):
            return exc
        text = str(exc)
        if "NoSuchBucket" in text:
            return PhotoStoreError(f"photo store {self.where}: the bucket {self.bucket!r} does not exist")
        name = type(exc).__name__
        if isinstance(exc, PermissionError) or "PermissionDenied" in name or "Unauthenticated" in name or " 403 " in text or " 401 " in text:
            return PhotoStoreError(f"photo store {self.where}: {op} refused: check NAMJAI_S3_ACCESS_KEY, NAMJAI_S3_SECRET_KEY and the bucket's policy")
        return PhotoStoreError(f"photo store {self.where}: {op} failed: {_first_line(exc)}")

    async def _put(self, path: str, data: bytes, content_type: str) -> None:
        try:
            await _run(obstore.put, self._store, path, data, attributes={"Content-Type": content_type})
        except Exception as e:
            raise self._error("put", e) from None

    async def _exists(self, path: str) -> bool:
        try:
            await _run(obstore.head, self._store, path)
            return True
        except FileNotFoundError:
            return False
        except Exception as e:
            raise self._error("head", e) from None

    # -- PhotoStore ------------------------------------------------------------

    async def put(self, data: bytes) -> StoredPhoto:
        jpeg, width, height = await asyncio.to_thread(prepare_image, data, **self._prepare_kwargs)
        key = hashlib.sha256(jpeg).hexdigest() + ".jpg"
        await self._put(key, jpeg, "image/jpeg")
        return StoredPhoto(key=key, size=len(jpeg), width=width, height=height)

    async def put_voice(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest() + "." + voice_extension(data)
        await self._put(key, data, media_type(key))
        return key

    async def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            return await _run(lambda: bytes(obstore.get(self._store, key).bytes()))
        except FileNotFoundError as e:
            if "NoSuchBucket" in str(e):
                raise self._error("get", e) from None
        except Exception as e:
            raise self._error("get", e) from None
        if await self._exists(DELETED + key):
            raise PhotoDeleted(key)
        raise PhotoMissing(key)

    async def exists(self, key: str) -> bool:
        return await self._exists(validate_key(key))

    async def delete(self, key: str, *, mark: bool = True) -> bool:
        """Deletes on purpose: the marker first (when `mark`: a report still names the photo), then
        the object (never a photo a report names gone unexplained)."""
        validate_key(key)
        existed = await self._exists(key)
        if mark:
            await self._put(DELETED + key, datetime.now(timezone.utc).isoformat().encode(), "text/plain")
        try:
            await _run(obstore.delete, self._store, key)
        except FileNotFoundError:
            pass
        except Exception as e:
            raise self._error("delete", e) from None
        return existed

    async def stored(self) -> list[tuple[str, datetime]]:
        """Every object kept (not the deletion markers), with when it was written."""

        def listing() -> list[tuple[str, datetime]]:
            out: list[tuple[str, datetime]] = []
            for batch in obstore.list(self._store, chunk_size=1000):
                for meta in batch:
                    path = str(meta["path"])
                    if not path.startswith(DELETED) and KEY_RE.fullmatch(path):
                        out.append((path, meta["last_modified"]))
            return out

        try:
            return await _run(listing)
        except Exception as e:
            raise self._error("list", e) from None

    async def check(self) -> None:
        """Reads a key that is never written: the bucket must answer 'no such key'."""
        try:
            await _run(obstore.get, self._store, CHECK_KEY)
        except FileNotFoundError as e:
            if "NoSuchBucket" in str(e):
                raise self._error("check", e) from None
        except Exception as e:
            raise self._error("check", e) from None
