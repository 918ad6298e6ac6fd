"""Tests for storage.photos (prepare_image and LocalPhotoStore)."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from storage import photos
from storage.photos import (
    LocalPhotoStore,
    PhotoError,
    PhotoStore,
    StoredPhoto,
    prepare_image,
)

GPS_IFD = ExifTags.IFD.GPSInfo  # 0x8825


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    im = Image.linear_gradient("L").resize(size)
    if mode == "RGB":
        return Image.merge("RGB", (im, im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), im))
    return im.convert(mode)


def _jpeg_with_gps(size: tuple[int, int] = (320, 240), orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Phone 15"
    exif[GPS_IFD] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (13.0, 45.0, 22.7),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (100.0, 30.0, 6.5),
    }
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _encode(_gradient(size), "JPEG", exif=exif, icc_profile=icc, comment=b"secret")


def _png_declaring_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height pixels (a decompression bomb)."""
    raw = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    assert raw[12:16] == b"IHDR"
    raw[16:20] = width.to_bytes(4, "big")
    raw[20:24] = height.to_bytes(4, "big")
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    return bytes(raw)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def store(tmp_path: Path) -> LocalPhotoStore:
    return LocalPhotoStore(tmp_path / "photos")


# --------------------------------------------------------------------------- #
# prepare_image
# --------------------------------------------------------------------------- #


def test_source_fixture_really_has_gps() -> None:
    src = Image.open(io.BytesIO(_jpeg_with_gps()))
    assert src.getexif().get_ifd(GPS_IFD)
    assert "exif" in src.info


def test_prepare_strips_exif_gps_and_metadata() -> None:
    out, width, height = prepare_image(_jpeg_with_gps())
    im = Image.open(io.BytesIO(out))
    assert im.format == "JPEG"
    assert im.mode == "RGB"
    assert (im.width, im.height) == (width, height) == (320, 240)
    assert len(im.getexif()) == 0
    assert not im.getexif().get_ifd(GPS_IFD)
    assert "exif" not in im.info
    assert "icc_profile" not in im.info
    assert "comment" not in im.info
    assert b"PhoneMaker" not in out
    assert b"Exif" not in out


def test_orientation_applied_before_stripping() -> None:
    # Orientation 6: the stored pixels must be rotated 90 degrees to display upright.
    out, width, height = prepare_image(_jpeg_with_gps((200, 100), orientation=6))
    assert (width, height) == (100, 200)
    im = Image.open(io.BytesIO(out))
    assert im.size == (100, 200)
    assert len(im.getexif()) == 0


def test_png_with_alpha_is_flattened_to_rgb_jpeg() -> None:
    im = Image.new("RGBA", (64, 48), (255, 0, 0, 0))  # fully transparent red
    im.paste((0, 0, 255, 255), (0, 0, 32, 48))  # opaque blue left half
    out, width, height = prepare_image(_encode(im, "PNG"))
    result = Image.open(io.BytesIO(out))
    assert result.format == "JPEG" and result.mode == "RGB"
    assert (width, height) == (64, 48)
    r, g, b = result.getpixel((8, 24))
    assert b > 200 and r < 60  # blue stays blue
    r, g, b = result.getpixel((56, 24))
    assert min(r, g, b) > 230  # transparent becomes white, not black or red


def test_webp_and_gif_first_frame_accepted() -> None:
    out, _, _ = prepare_image(_encode(_gradient((50, 40)), "WEBP"))
    assert Image.open(io.BytesIO(out)).format == "JPEG"

    red = Image.new("RGB", (30, 30), (255, 0, 0))
    blue = Image.new("RGB", (30, 30), (0, 0, 255))
    gif = _encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    out, width, height = prepare_image(gif)
    r, g, b = Image.open(io.BytesIO(out)).getpixel((15, 15))
    assert (width, height) == (30, 30)
    assert r > 200 and b < 60


def test_large_image_downscaled_to_max_side() -> None:
    data = _encode(_gradient((4000, 3000)), "JPEG", quality=90)
    out, width, height = prepare_image(data)
    assert (width, height) == (1600, 1200)
    assert Image.open(io.BytesIO(out)).size == (1600, 1200)

    out, width, height = prepare_image(_encode(_gradient((300, 900)), "PNG"), max_side=300)
    assert (width, height) == (100, 300)


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(4096),
        b"Hello, this is a text file, not a photo.\n" * 20,
        b"",
        b"\xff\xd8\xff\xe0" + b"\x00" * 100,  # JPEG magic, garbage after
        _encode(Image.new("RGB", (10, 10)), "BMP"),  # valid image, format not allowed
        _encode(_gradient((200, 200)), "PNG")[:300],  # truncated PNG
    ],
    ids=["random", "text", "empty", "fake-jpeg", "bmp", "truncated-png"],
)
def test_not_image(data: bytes) -> None:
    with pytest.raises(PhotoError) as info:
        prepare_image(data)
    assert info.value.reason == "not_image"


def test_too_large_input_bytes() -> None:
    data = _jpeg_with_gps()
    with pytest.raises(PhotoError) as info:
        prepare_image(data, max_input_bytes=len(data) - 1)
    assert info.value.reason == "too_large"
    # Exactly at the limit is fine.
    prepare_image(data, max_input_bytes=len(data))


@pytest.mark.parametrize(
    ("width", "height"),
    [(8000, 8000), (30_000, 30_000)],  # 64 MP (our limit) and 900 MP (Pillow's own error)
)
def test_decompression_bomb_is_too_large(width: int, height: int) -> None:
    data = _png_declaring_size(width, height)
    assert len(data) < 100
    with pytest.raises(PhotoError) as info:
        prepare_image(data)
    assert info.value.reason == "too_large"


def test_max_pixels_parameter() -> None:
    data = _encode(_gradient((100, 100)), "PNG")
    with pytest.raises(PhotoError) as info:
        prepare_image(data, max_pixels=9_999)
    assert info.value.reason == "too_large"
    prepare_image(data, max_pixels=10_000)


def test_photo_error_reason() -> None:
    err = PhotoError("too_large")
    assert err.reason == "too_large"
    assert isinstance(err, Exception)


# --------------------------------------------------------------------------- #
# LocalPhotoStore
# --------------------------------------------------------------------------- #


def test_local_store_satisfies_protocol(store: LocalPhotoStore) -> None:
    assert isinstance(store, PhotoStore)


async def test_put_get_layout_and_metadata(store: LocalPhotoStore) -> None:
    photo = await store.put(_jpeg_with_gps())
    assert isinstance(photo, StoredPhoto)
    assert photos.KEY_RE.fullmatch(photo.key)
    assert (photo.width, photo.height) == (320, 240)

    path = store.root / photo.key[0:2] / photo.key[2:4] / photo.key
    assert path.is_file()
    stored = await store.get(photo.key)
    assert stored == path.read_bytes()
    assert photo.size == len(stored)
    assert photo.key == photos.hashlib.sha256(stored).hexdigest() + ".jpg"

    im = Image.open(io.BytesIO(stored))
    assert len(im.getexif()) == 0
    assert "exif" not in im.info
    # No temporary files left behind.
    assert _files_under(store.root) == [path]


async def test_put_is_idempotent(store: LocalPhotoStore) -> None:
    data = _jpeg_with_gps()
    first = await store.put(data)
    second = await store.put(data)
    assert first == second
    assert len(_files_under(store.root)) == 1


async def test_put_uses_prepare_kwargs(tmp_path: Path) -> None:
    store = LocalPhotoStore(tmp_path, max_side=100)
    photo = await store.put(_encode(_gradient((400, 200)), "PNG"))
    assert (photo.width, photo.height) == (100, 50)


async def test_put_rejects_bad_input_without_writing(store: LocalPhotoStore) -> None:
    with pytest.raises(PhotoError) as info:
        await store.put(b"not an image at all")
    assert info.value.reason == "not_image"
    with pytest.raises(PhotoError) as info:
        await store.put(_png_declaring_size(20_000, 20_000))
    assert info.value.reason == "too_large"
    assert not store.root.exists() or _files_under(store.root) == []


async def test_exists_delete_get_missing(store: LocalPhotoStore) -> None:
    photo = await store.put(_jpeg_with_gps())
    assert await store.exists(photo.key) is True
    assert await store.delete(photo.key) is True
    assert await store.exists(photo.key) is False
    assert await store.delete(photo.key) is False
    with pytest.raises(KeyError):
        await store.get(photo.key)

    missing = "0" * 64 + ".jpg"
    assert await store.exists(missing) is False
    with pytest.raises(KeyError):
        await store.get(missing)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        "0" * 64,  # no extension
        "0" * 63 + ".jpg",  # too short
        "A" * 64 + ".jpg",  # upper case
        "../" + "0" * 61 + ".jpg",
        "0" * 64 + ".jpg/../../x",
        "0" * 64 + ".jpg\n",
        "0" * 64 + ".png",
    ],
)
async def test_malicious_keys_rejected_without_fs_access(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    store = LocalPhotoStore(tmp_path / "root")

    def no_thread(*args, **kwargs):
        raise AssertionError("file-system work attempted for an invalid key")

    monkeypatch.setattr(photos.asyncio, "to_thread", no_thread)
    for call in (store.get, store.delete, store.exists):
        with pytest.raises((ValueError, KeyError)):
            await call(key)
    monkeypatch.undo()

    assert victim.read_text() == "keep me"
    assert not (tmp_path / "root").exists()


def test_heic_from_an_iphone_is_converted_to_jpeg() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")  # pinned in pyproject.toml
    im = Image.new("RGB", (64, 48), (200, 30, 30))
    heif = pillow_heif.from_pillow(im)
    buf = io.BytesIO()
    heif.save(buf, quality=80)
    data = buf.getvalue()
    assert data[4:12] in (b"ftypheic", b"ftypmif1", b"ftypheix"), data[:16]
    out, w, h = prepare_image(data)
    assert (w, h) == (64, 48) and out[:2] == b"\xff\xd8"
    again = Image.open(io.BytesIO(out))
    assert again.format == "JPEG" and again.getpixel((32, 24))[0] > 150
