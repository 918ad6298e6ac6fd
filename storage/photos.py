"""Photo store: validates, sanitises and stores uploaded photos by content hash.

Every photo is re-encoded as a baseline RGB JPEG: the orientation from EXIF is applied
to the pixels, then all metadata (EXIF including GPS, XMP, ICC, comments) is dropped,
so a volunteer's photo never leaks where or with which phone it was taken.

Two stores behind one interface (`PhotoStore`), chosen by `open_store(settings)`:
- `LocalPhotoStore`: a folder (`NAMJAI_PHOTO_DIR`), the embedded default for one host;
- `S3PhotoStore` (storage/photo_s3.py): an S3-compatible bucket (`NAMJAI_PHOTO_STORE=s3://bucket/prefix`)
  that several replicas on several hosts share.

A key that is not there is one of two things, and `get` tells them apart: `PhotoDeleted` when it
was deleted through the store on purpose by retention, of a report that still names it (the store
keeps a small marker naming the key, never the photo), `PhotoMissing` otherwise (a photo nothing
names any more is deleted without a marker: a forgotten draft leaves not even its key) (never stored here, lost, or a
replica with a store of its own). Both are `KeyError`s.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "KEY_RE",
    "LocalPhotoStore",
    "PhotoDeleted",
    "PhotoError",
    "PhotoMissing",
    "PhotoStore",
    "PhotoStoreError",
    "StoredPhoto",
    "open_store",
    "prepare_image",
    "validate_key",
]

DEFAULT_MAX_PIXELS = 50_000_000

# HEIC/HEIF (what iPhones send as files) through pillow-heif, loaded only when such a file
# arrives (a smaller process; libheif is not needed for the JPEGs and PNGs most phones send).
_HEIF_FORMATS: tuple[str, ...] = ("HEIF",)
_heif_ready: bool | None = None


def _heif_opener() -> bool:
    """Registers pillow-heif's opener once; False when it is missing or broken."""
    global _heif_ready
    if _heif_ready is None:
        try:  # pragma: no cover - depends on the environment
            import pillow_heif  # type: ignore[import-not-found]

            pillow_heif.register_heif_opener()
            _heif_ready = True
        except Exception:  # pragma: no cover
            _heif_ready = False
    return _heif_ready


# Pillow format ids accepted on input. "MPO" is how Pillow reports the multi-picture
# JPEGs that many phones produce.
ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", *_HEIF_FORMATS})
# Plugins Pillow may try when opening (restricting them avoids exotic parsers).
_OPEN_FORMATS = ["JPEG", "PNG", "WEBP", "GIF"]

KEY_RE = re.compile(r"^[0-9a-f]{64}\.(jpg|m4a|ogg|mp3|aac)$")
MAX_VOICE_BYTES = 10_000_000


class PhotoError(Exception):
    """The upload was rejected. ``reason`` is ``"not_image"`` or ``"too_large"``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PhotoMissing(KeyError):
    """No such photo in the store, and it was not deleted through it: never stored here, or lost."""


class PhotoDeleted(KeyError):
    """The photo was deleted on purpose through the store (PDPA retention)."""


class PhotoStoreError(Exception):
    """The store cannot be used: bad settings, no such bucket, credentials refused, unreachable.
    Its message is one line naming the setting or the store."""


@dataclass(frozen=True)
class StoredPhoto:
    key: str  # sha256 hex of the re-encoded bytes + ".jpg"
    size: int  # bytes
    width: int
    height: int


def validate_key(key: str) -> str:
    """Return ``key`` if it is a well-formed photo key, else raise ``ValueError``."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ValueError(f"invalid photo key: {key!r}")
    return key


def _flatten_to_rgb(im):
    """Convert to RGB, compositing any transparency onto a white background."""
    from PIL import Image

    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def prepare_image(
    data: bytes,
    *,
    max_input_bytes: int = 20_000_000,
    max_side: int = 1600,
    quality: int = 82,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[bytes, int, int]:
    """Validates and re-encodes an uploaded image.

    Returns ``(jpeg_bytes, width, height)``: JPEG out, EXIF (GPS included) and all other
    metadata removed, orientation applied (``ImageOps.exif_transpose``) before stripping,
    longest side at most ``max_side``, RGB (transparency flattened onto white).

    Raises ``PhotoError("too_large")`` when ``len(data) > max_input_bytes`` or the pixel
    count exceeds ``max_pixels`` (decompression bombs included), and
    ``PhotoError("not_image")`` when Pillow cannot decode it or it is not
    JPEG/PNG/WEBP/GIF (first frame)/HEIC (when pillow-heif is installed).
    """
    from PIL import Image, ImageOps  # imported when the first photo comes, not at start (about 4 MiB)

    if len(data) > max_input_bytes:
        raise PhotoError("too_large")
    if not data:
        raise PhotoError("not_image")

    try:
        # Image.open only reads the header. Pillow itself raises DecompressionBombError
        # above 2 * Image.MAX_IMAGE_PIXELS; our own, stricter limit is checked below
        # before any pixel data is decoded (no global state is changed).
        formats = _OPEN_FORMATS
        if data[4:8] == b"ftyp" and _heif_opener():  # an ISO media file: HEIC/HEIF
            formats = [*_OPEN_FORMATS, *_HEIF_FORMATS]
        im = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise PhotoError("too_large") from exc
    except Exception as exc:
        raise PhotoError("not_image") from exc

    with im:
        if im.format not in ALLOWED_FORMATS:
            raise PhotoError("not_image")
        width, height = im.size
        if width <= 0 or height <= 0:
            raise PhotoError("not_image")
        if width * height > max_pixels:
            raise PhotoError("too_large")
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF/WEBP: first frame only
            if im.format in ("JPEG", "MPO"):
                # Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 when it can.
                im.draft("RGB", (max_side, max_side))
            im.load()
            # Apply the orientation before the EXIF block is thrown away.
            oriented = ImageOps.exif_transpose(im)
            rgb = _flatten_to_rgb(oriented)
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            # Copy the pixels into a brand-new image so no metadata can ride along.
            clean = Image.new("RGB", rgb.size)
            clean.paste(rgb)
            out = io.BytesIO()
            clean.save(out, format="JPEG", quality=quality, optimize=True)
        except Image.DecompressionBombError as exc:
            raise PhotoError("too_large") from exc
        except PhotoError:
            raise
        except Exception as exc:  # truncated or corrupt data, unsupported mode...
            raise PhotoError("not_image") from exc
    return out.getvalue(), clean.width, clean.height


@runtime_checkable
class PhotoStore(Protocol):
    async def put(self, data: bytes) -> StoredPhoto: ...  # prepare_image then store by hash

    async def get(self, key: str) -> bytes: ...  # PhotoDeleted / PhotoMissing (KeyErrors) when not there

    # On purpose. `mark`: a later get raises PhotoDeleted (a report still names the photo: retention);
    # without it nothing of the photo stays, its key included (a forgotten draft, an orphan).
    async def delete(self, key: str, *, mark: bool = True) -> bool: ...

    async def exists(self, key: str) -> bool: ...

    async def put_voice(self, data: bytes) -> str: ...  # a voice note kept as is; returns its key

    async def check(self) -> None: ...  # PhotoStoreError (one line) when the store cannot be used

    async def stored(self) -> list[tuple[str, datetime]]: ...  # every kept file's key and when it was written


def open_store(settings: Any) -> PhotoStore:
    """The photo store the settings name: `NAMJAI_PHOTO_STORE=s3://bucket/prefix` (with
    `NAMJAI_S3_ENDPOINT`, `NAMJAI_S3_REGION`, `NAMJAI_S3_ACCESS_KEY`, `NAMJAI_S3_SECRET_KEY`) or,
    unset, the folder `NAMJAI_PHOTO_DIR`. No I/O here: `await store.check()` tries the store.
    Bad settings raise `PhotoStoreError` with one line naming the setting."""
    url = (getattr(settings, "photo_store", None) or "").strip()
    if not url:
        return LocalPhotoStore(settings.photo_dir)
    from storage.photo_s3 import S3PhotoStore  # the S3 client is loaded only when asked for

    return S3PhotoStore.from_settings(url, settings)


MEDIA_TYPES = {"jpg": "image/jpeg", "m4a": "audio/mp4", "ogg": "audio/ogg", "mp3": "audio/mpeg", "aac": "audio/aac"}


def media_type(key: str) -> str:
    """The HTTP content type of a stored key."""
    return MEDIA_TYPES[validate_key(key).rsplit(".", 1)[1]]


def voice_extension(data: bytes) -> str:
    """The container of a voice note by its first bytes (LINE sends m4a, Telegram ogg)."""
    if len(data) > MAX_VOICE_BYTES:
        raise PhotoError("too_large")
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "aac" if len(data) > 1 and data[1] & 0x06 == 0 else "mp3"
    raise PhotoError("not_audio")


class LocalPhotoStore:
    """Stores photos as files under ``root/ab/cd/<key>``; a key deleted through the store leaves
    a marker ``root/deleted/ab/cd/<key>`` (the deletion time, UTC), so `get` can say so.

    Writes are atomic (temporary file in the target folder, then ``os.replace``).
    Keys are validated against ``KEY_RE`` before any file-system access, so a key
    can never point outside ``root``; a malformed key raises ``ValueError``.
    Pillow and file work run in a worker thread (``asyncio.to_thread``).
    """

    def __init__(self, root: str | Path, **prepare_kwargs: Any) -> None:
        self.root = Path(root)
        self._prepare_kwargs = prepare_kwargs

    def path_for(self, key: str) -> Path:
        validate_key(key)
        return self.root / key[0:2] / key[2:4] / key

    def _marker_for(self, key: str) -> Path:
        validate_key(key)
        return self.root / "deleted" / key[0:2] / key[2:4] / key

    # -- public async API ------------------------------------------------------

    async def put(self, data: bytes) -> StoredPhoto:
        return await asyncio.to_thread(self._put_sync, data)

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        return await asyncio.to_thread(self._get_sync, path, key, self._marker_for(key))

    async def delete(self, key: str, *, mark: bool = True) -> bool:
        """Deletes on purpose: the marker first (when `mark`), then the file (never a photo a report
        names gone unexplained)."""
        path = self.path_for(key)
        return await asyncio.to_thread(self._delete_sync, path, self._marker_for(key) if mark else None)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as e:
            raise PhotoStoreError(f"NAMJAI_PHOTO_DIR: cannot use {str(self.root)!r}: {e.strerror or e}") from None

    async def exists(self, key: str) -> bool:
        path = self.path_for(key)
        return await asyncio.to_thread(path.is_file)

    async def stored(self) -> list[tuple[str, datetime]]:
        """Every file kept (not the deletion markers), with when it was written (retention's orphans)."""
        def scan() -> list[tuple[str, datetime]]:
            out = []
            for path in self.root.glob("??/??/*"):
                if path.is_file() and KEY_RE.fullmatch(path.name):
                    out.append((path.name, datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)))
            return out

        return await asyncio.to_thread(scan)

    async def put_voice(self, data: bytes) -> str:
        """Keeps a voice note unchanged, named by its content hash; PhotoError when it is not audio."""
        key = hashlib.sha256(data).hexdigest() + "." + voice_extension(data)
        await asyncio.to_thread(self._write_once, self.path_for(key), data)
        return key

    # -- blocking helpers (run in a worker thread) -----------------------------

    def _put_sync(self, data: bytes) -> StoredPhoto:
        jpeg, width, height = prepare_image(data, **self._prepare_kwargs)
        key = hashlib.sha256(jpeg).hexdigest() + ".jpg"
        self._write_once(self.path_for(key), jpeg)
        return StoredPhoto(key=key, size=len(jpeg), width=width, height=height)

    @staticmethod
    def _write_once(path: Path, data: bytes) -> None:
        if path.is_file():
            return  # idempotent: same content, same key, one file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise

    @staticmethod
    def _get_sync(path: Path, key: str, marker: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise (PhotoDeleted(key) if marker.is_file() else PhotoMissing(key)) from None

    @classmethod
    def _delete_sync(cls, path: Path, marker: Path | None) -> bool:
        if marker is not None:
            cls._write_once(marker, datetime.now(timezone.utc).isoformat().encode())  # keeps the first time
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
