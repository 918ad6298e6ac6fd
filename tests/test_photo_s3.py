"""The photo store several hosts share: the S3 store against a loopback S3 server (moto, started by
tests/s3_server.py), the factory choosing by settings, "deleted by retention" told from "missing",
and a card with its photo sent by a second replica that did not receive the photo."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from typer.testing import CliRunner

from bot.i18n import both, text
from bot.settings import Settings
from flows.model import Msg
from storage import repo
from storage.photo_s3 import S3PhotoStore
from storage.photos import (
    LocalPhotoStore,
    PhotoDeleted,
    PhotoError,
    PhotoMissing,
    PhotoStore,
    PhotoStoreError,
    open_store,
)
from tests.chat import Sandbox
from tests.conftest import jpeg
from tests.fake_line import SECRET
from tests.fake_telegram import FakeTelegram
from tests.s3_server import bucket, free_port, s3_server  # noqa: F401  (fixtures)
from tests.test_e2e_sandbox import full_report

ROOT = Path(__file__).resolve().parent.parent
GROUP = -1001234567890
OGG = b"OggS\x00\x02" + bytes(range(200))
M4A = b"\x00\x00\x00\x20ftypM4A " + bytes(range(100))
UNKNOWN = "f" * 64 + ".jpg"


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (13.0, 45.0, 22.7)}
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (10, 200, 30)).save(buf, "JPEG", exif=exif, comment=b"secret")
    return buf.getvalue()


def s3_store(server, bucket_name: str, prefix: str = "photos") -> S3PhotoStore:
    store = open_store(Settings(_env_file=None, **server.settings(bucket_name, prefix)))
    assert isinstance(store, S3PhotoStore)
    return store


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the S3 store


async def test_s3_photo_put_get_by_content_hash_without_exif(s3_server, bucket):
    store = s3_store(s3_server, bucket)
    assert isinstance(store, PhotoStore)
    await store.check()
    original = jpeg_with_gps()
    photo = await store.put(original)
    stored = await store.get(photo.key)
    assert photo.key == sha(stored) + ".jpg" and photo.size == len(stored) and (photo.width, photo.height) == (320, 240)
    im = Image.open(io.BytesIO(stored))
    assert len(im.getexif()) == 0 and "exif" not in im.info and b"PhoneMaker" not in stored and b"secret" not in stored
    # What the bucket holds, read past the store: the re-encoded bytes under the prefix, as JPEG.
    status, headers, body = s3_server.raw_get(bucket, f"photos/{photo.key}")
    assert status == 200 and body == stored and headers.get("Content-Type") == "image/jpeg"
    assert await store.exists(photo.key)
    assert await store.put(original) == photo  # the same bytes, the same key


async def test_s3_voice_notes_are_kept_as_sent(s3_server, bucket):
    store = s3_store(s3_server, bucket)
    ogg, m4a = await store.put_voice(OGG), await store.put_voice(M4A)
    assert ogg == sha(OGG) + ".ogg" and m4a == sha(M4A) + ".m4a"
    assert await store.get(ogg) == OGG and await store.get(m4a) == M4A
    status, headers, _ = s3_server.raw_get(bucket, f"photos/{m4a}")
    assert status == 200 and headers.get("Content-Type") == "audio/mp4"
    with pytest.raises(PhotoError) as e:
        await store.put_voice(b"not audio at all")
    assert e.value.reason == "not_audio"
    with pytest.raises(PhotoError):
        await store.put(b"not an image")


async def test_s3_missing_is_not_deleted(s3_server, bucket):
    store = s3_store(s3_server, bucket)
    with pytest.raises(PhotoMissing):
        await store.get(UNKNOWN)
    photo = await store.put(jpeg())
    voice = await store.put_voice(OGG)
    assert await store.delete(photo.key) is True and await store.delete(voice) is True
    for key in (photo.key, voice):
        with pytest.raises(PhotoDeleted):
            await store.get(key)
        assert not await store.exists(key)
        status, _, _ = s3_server.raw_get(bucket, f"photos/{key}")
        assert status == 404  # the object is gone; only the marker under deleted/ names the key
        status, _, marker = s3_server.raw_get(bucket, f"photos/deleted/{key}")
        assert status == 200 and marker.startswith(b"20")  # the deletion time, not the photo
    assert await store.delete(photo.key) is False  # already gone: still "deleted", not "missing"
    with pytest.raises(PhotoDeleted):
        await store.get(photo.key)
    # Both are KeyErrors, as the channels have always expected of a key that is not there.
    assert issubclass(PhotoDeleted, KeyError) and issubclass(PhotoMissing, KeyError)
    assert not issubclass(PhotoDeleted, PhotoMissing) and not issubclass(PhotoMissing, PhotoDeleted)
    # The same photo sent again later is stored again and served.
    assert (await store.put(jpeg())).key == photo.key and sha(await store.get(photo.key)) == photo.key[:-4]


async def test_s3_forgetting_leaves_no_marker(s3_server, bucket):
    """A photo nothing names any more (a forgotten draft, an orphan) goes without a trace: no
    object, no marker naming its key."""
    store = s3_store(s3_server, bucket)
    photo = await store.put(jpeg((3, 1, 4)))
    assert await store.delete(photo.key, mark=False) is True
    with pytest.raises(PhotoMissing):
        await store.get(photo.key)
    for path in (f"photos/{photo.key}", f"photos/deleted/{photo.key}"):
        status, _, _ = s3_server.raw_get(bucket, path)
        assert status == 404, path


async def test_s3_prefixes_keep_stores_apart(s3_server, bucket):
    one, other = s3_store(s3_server, bucket, "city-a"), s3_store(s3_server, bucket, "city-b/photos")
    photo = await one.put(jpeg())
    with pytest.raises(PhotoMissing):
        await other.get(photo.key)
    assert s3_server.raw_get(bucket, f"city-a/{photo.key}")[0] == 200


async def test_s3_bad_keys_are_refused_before_any_request(s3_server, bucket):
    store = s3_store(s3_server, bucket)
    for key in ("../x", "deleted/" + UNKNOWN, UNKNOWN.upper(), ".namjai-check"):
        for call in (store.get, store.delete, store.exists):
            with pytest.raises(ValueError):
                await call(key)


async def test_s3_check_names_what_is_wrong_in_one_line(s3_server, bucket):
    with pytest.raises(PhotoStoreError) as e:
        await s3_store(s3_server, "no-such-bucket-here").check()
    assert "'no-such-bucket-here' does not exist" in str(e.value) and "\n" not in str(e.value)
    closed = {**s3_server.settings(bucket), "s3_endpoint": f"http://127.0.0.1:{free_port()}"}
    store = open_store(Settings(_env_file=None, **closed))
    with pytest.raises(PhotoStoreError) as e:
        await store.check()
    assert "failed" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(PhotoStoreError):  # every operation says the same, none hangs
        await store.get(UNKNOWN)


# --------------------------------------------------------------------------- two processes, one bucket

STORE_SCRIPT = """
import asyncio, hashlib, json, sys
from bot.settings import Settings
from storage.photos import PhotoDeleted, open_store

async def main():
    store = open_store(Settings(_env_file=None))  # from NAMJAI_* in the environment
    await store.check()
    if sys.argv[1] == "put":
        photo = await store.put(open(sys.argv[2], "rb").read())
        voice = await store.put_voice(open(sys.argv[3], "rb").read())
        print(json.dumps({"photo": photo.key, "voice": voice, "store": repr(store)}))
        return
    out = {}
    for key in sys.argv[2:]:
        try:
            out[key] = hashlib.sha256(await store.get(key)).hexdigest()
        except PhotoDeleted:
            out[key] = "deleted"
        except KeyError:
            out[key] = "missing"
    print(json.dumps(out))

asyncio.run(main())
"""


def run_store_process(s3_server, bucket_name: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAMJAI_", "AWS_"))}
    env.update(s3_server.env(bucket_name))
    done = subprocess.run([sys.executable, "-c", STORE_SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_separate_processes_share_one_bucket(s3_server, bucket, tmp_path):
    (tmp_path / "photo.jpg").write_bytes(jpeg_with_gps())
    (tmp_path / "voice.ogg").write_bytes(OGG)
    put = await asyncio.to_thread(run_store_process, s3_server, bucket, "put", str(tmp_path / "photo.jpg"), str(tmp_path / "voice.ogg"))
    assert s3_server.secret_key not in put["store"] and bucket in put["store"]
    photo, voice = put["photo"], put["voice"]
    here = s3_store(s3_server, bucket)  # this process: a replica of its own
    assert sha(await here.get(photo)) == photo[:-4] and await here.get(voice) == OGG
    await here.delete(photo)
    got = await asyncio.to_thread(run_store_process, s3_server, bucket, "get", photo, voice, UNKNOWN)
    assert got == {photo: "deleted", voice: sha(OGG), UNKNOWN: "missing"}


# --------------------------------------------------------------------------- the factory and its settings


def test_factory_default_is_the_local_folder(tmp_path):
    store = open_store(Settings(_env_file=None, photo_dir=str(tmp_path / "p")))
    assert isinstance(store, LocalPhotoStore) and store.root == tmp_path / "p"
    assert isinstance(open_store(Settings(_env_file=None, photo_dir=str(tmp_path), photo_store="  ")), LocalPhotoStore)


def test_factory_reads_the_environment(monkeypatch):
    monkeypatch.setenv("NAMJAI_PHOTO_STORE", "s3://namjai-photos/prod/th")
    monkeypatch.setenv("NAMJAI_S3_ENDPOINT", "https://s3.example.org:9000/")
    monkeypatch.setenv("NAMJAI_S3_REGION", "ap-southeast-7")
    monkeypatch.setenv("NAMJAI_S3_ACCESS_KEY", "AKIA-TEST")
    monkeypatch.setenv("NAMJAI_S3_SECRET_KEY", "very-secret-value")
    settings = Settings(_env_file=None)
    assert "very-secret-value" not in repr(settings)
    store = open_store(settings)
    assert isinstance(store, S3PhotoStore)
    assert (store.bucket, store.prefix, store.endpoint) == ("namjai-photos", "prod/th", "https://s3.example.org:9000")
    assert "very-secret-value" not in repr(store) and "AKIA" not in repr(store)


@pytest.mark.parametrize(
    "settings, setting",
    [
        ({"photo_store": "gs://bucket/photos"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "s3://"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "s3://Bad_Bucket/photos"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "s3://bucket/../etc"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "s3://bucket/a b"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "/var/photos"}, "NAMJAI_PHOTO_STORE"),
        ({"photo_store": "s3://bucket", "s3_endpoint": "ftp://host"}, "NAMJAI_S3_ENDPOINT"),
        ({"photo_store": "s3://bucket", "s3_endpoint": "127.0.0.1:9000"}, "NAMJAI_S3_ENDPOINT"),
        ({"photo_store": "s3://bucket", "s3_endpoint": "http://host:99999"}, "NAMJAI_S3_ENDPOINT"),
        ({"photo_store": "s3://bucket", "s3_endpoint": "http://host/bucket"}, "NAMJAI_S3_ENDPOINT"),
        ({"photo_store": "s3://bucket", "s3_access_key": "AKIA-ONLY"}, "NAMJAI_S3_SECRET_KEY"),
        ({"photo_store": "s3://bucket", "s3_secret_key": "lonely-secret"}, "NAMJAI_S3_ACCESS_KEY"),
    ],
)
def test_bad_settings_give_one_clear_line(settings, setting):
    with pytest.raises(PhotoStoreError) as e:
        open_store(Settings(_env_file=None, **settings))
    message = str(e.value)
    assert message.startswith(setting + ":") and "\n" not in message and "lonely-secret" not in message


def test_serve_and_retention_refuse_bad_store_settings_in_one_line(tmp_path, monkeypatch):
    from bot.cli import app

    monkeypatch.setenv("NAMJAI_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/n.db")
    monkeypatch.setenv("NAMJAI_PHOTO_STORE", "s3://Not A Bucket")
    monkeypatch.setenv("NAMJAI_PORT", str(free_port()))
    for args in (["serve"], ["retention", "--dry-run"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, r.output
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: NAMJAI_PHOTO_STORE:"), r.output


# --------------------------------------------------------------------------- deleted vs missing, where people see it


async def test_local_store_tells_deleted_from_missing(tmp_path):
    store = LocalPhotoStore(tmp_path / "photos")
    photo = await store.put(jpeg())
    assert await store.delete(photo.key) is True
    with pytest.raises(PhotoDeleted):
        await store.get(photo.key)
    with pytest.raises(PhotoMissing):
        await store.get(UNKNOWN)
    assert (tmp_path / "photos" / "deleted" / photo.key[:2] / photo.key[2:4] / photo.key).is_file()
    await store.put(jpeg())
    assert sha(await store.get(photo.key)) == photo.key[:-4]


async def test_local_store_forgets_without_a_marker(tmp_path):
    store = LocalPhotoStore(tmp_path / "photos")
    photo = await store.put(jpeg((3, 1, 4)))
    assert await store.delete(photo.key, mark=False) is True
    with pytest.raises(PhotoMissing):
        await store.get(photo.key)
    assert [p for p in (tmp_path / "photos").rglob("*") if p.is_file()] == []


async def test_retention_then_the_sandbox_link_says_deleted_not_missing(sandbox):
    from bot.retention import retention

    svc = sandbox.services
    team = sandbox.team("pattaya-city")
    ref = await full_report(sandbox.volunteer("kept"), photo=True)
    rid = (await team.card(ref))["card"]["report_id"]
    await team.choose(f"r:{rid}:close:helped_on_site")
    async with svc.db.session() as s:
        key = (await repo.report_get(s, rid)).photos[0]
    ok = await sandbox.client.get(f"/sandbox/photos/{key}")
    assert ok.status == 200 and sha(await ok.read()) == key[:-4]

    await retention(svc.db, svc.photos, sandbox.clock() + timedelta(days=91))
    gone = await sandbox.client.get(f"/sandbox/photos/{key}")
    assert gone.status == 410 and await gone.text() == both(Msg("photo.deleted"))
    missing = await sandbox.client.get(f"/sandbox/photos/{UNKNOWN}")
    assert missing.status == 404 and await missing.text() == both(Msg("photo.missing"))
    assert "ลบ" in both(Msg("photo.deleted")) and "retention" in both(Msg("photo.deleted"))


async def test_line_photo_link_gone_after_retention_not_found_when_missing(line):
    from handlers.line_messages import photo_url

    svc = line.services
    photo = await svc.photos.put(jpeg())

    def path(key: str) -> str:
        return photo_url("https://namjai.example", SECRET.encode(), key, line.clock(), 24).removeprefix("https://namjai.example")

    ok = await line.client.get(path(photo.key))
    assert ok.status == 200 and sha(await ok.read()) == photo.key[:-4]
    await svc.photos.delete(photo.key)
    gone = await line.client.get(path(photo.key))
    assert gone.status == 410 and await gone.text() == both(Msg("photo.deleted"))
    missing = await line.client.get(path(UNKNOWN))
    assert missing.status == 404 and await missing.text() == both(Msg("photo.missing"))


async def test_telegram_card_says_whether_its_photo_was_deleted_or_is_missing(tmp_path):
    from handlers.telegram import build_application
    from handlers.telegram_channel import TelegramChannel
    from types import SimpleNamespace

    store = LocalPhotoStore(tmp_path / "photos")
    kept, deleted = (await store.put(jpeg((1, 2, 3)))).key, (await store.put(jpeg((200, 2, 3)))).key
    await store.delete(deleted)
    async with FakeTelegram() as fake:
        application = build_application(Settings(_env_file=None, telegram_token="123:ABC", telegram_api_base=fake.url))
        await application.initialize()
        try:
            channel = TelegramChannel(application.bot, store.get)
            ui = {"photo_deleted": text(Msg("card.photo_deleted"), "en"), "photo_missing": text(Msg("card.photo_missing"), "en")}
            for n, key in enumerate((kept, deleted, UNKNOWN), start=1):
                payload = {"text": f"NJ-{n}", "buttons": [], "ask": None, "lang": "en", "card": {"report_id": n}, "photos": [key], "location": None, "ui": ui}
                assert (await channel.send(SimpleNamespace(id=n, chat_id=str(GROUP), payload=payload), None)).ok
        finally:
            await application.shutdown()
    [photo] = fake.sent("sendPhoto")
    assert photo.params["caption"] == "NJ-1" and photo.params["photo"]["sha256"] == kept[:-4]
    texts = [c.params["text"] for c in fake.sent("sendMessage")]
    assert texts == [f"NJ-2\n{text(Msg('card.photo_deleted'), 'en')}", f"NJ-3\n{text(Msg('card.photo_missing'), 'en')}"]


def test_a_card_of_purged_photos_says_so():
    from datetime import datetime, timezone

    from flows.cards import ReportView, card

    view = ReportView(id=1, ref="NJ-2569-000001", status="closed", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert Msg("card.photo_deleted") not in card(view, str).lines
    assert Msg("card.photo_deleted") in card(ReportView(**{**view.__dict__, "photos_purged": True}), str).lines


# --------------------------------------------------------------------------- two replicas, one database, one store


@pytest.mark.parametrize("shared", [True, False], ids=["s3-shared", "local-per-host"])
async def test_card_photo_sent_by_a_replica_that_did_not_receive_it(shared, db_url, tmp_path, clock, request):
    """Replica A (the sandbox, no Telegram) receives the volunteer's photo; replica B (Telegram) sends
    the team's Telegram card. With the S3 store B sends the photo and serves its link; with a local
    folder per host (the control) B has no such photo, and its card and link say "missing"."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import SERVICES, create_app

    if shared:
        server = request.getfixturevalue("s3_server")
        store_a = store_b = server.settings(server.create_bucket())
    else:
        store_a, store_b = {"photo_dir": str(tmp_path / "host-a")}, {"photo_dir": str(tmp_path / "host-b")}
    common = dict(_env_file=None, database_url=db_url, sweep_seconds=0.2, scheduler=False)
    async with FakeTelegram() as fake:
        a_settings = Settings(**common, **store_a, sandbox=True)
        b_settings = Settings(**common, **store_b, telegram_token="123:ABC", telegram_webhook_secret="s3cret", telegram_api_base=fake.url)
        app_a, app_b = create_app(a_settings, clock=clock), create_app(b_settings, clock=clock)
        async with TestServer(app_a, host="127.0.0.1") as server_a, TestClient(server_a) as client_a:
            async with TestServer(app_b, host="127.0.0.1") as server_b, TestClient(server_b) as client_b:
                svc_a, svc_b = app_a[SERVICES], app_b[SERVICES]
                async with svc_a.db.transaction() as s:
                    team = await repo.team_by_code(s, "pattaya-city")
                    await repo.bind_chat(s, "telegram", str(GROUP), team.id, "team", "th", clock())
                ref = await full_report(Sandbox(client_a, svc_a, clock).volunteer("two-hosts"), photo=True)
                async with svc_a.db.session() as s:
                    report = await repo.report_by_ref(s, ref)
                key = report.photos[0]
                assert svc_a.outbox.channels.keys() == {"sandbox"}  # only B can send to Telegram
                for _ in range(200):  # bounded: B's worker delivers the Telegram card
                    await svc_b.outbox.deliver_due()
                    if any(ref in t for t in fake.texts(GROUP)):
                        break
                    await asyncio.sleep(0.05)
                [card_text] = [t for t in fake.texts(GROUP) if ref in t]
                assert (await client_b.get(f"/sandbox/photos/{key}")).status == 404  # no sandbox beside Telegram
                if shared:
                    [sent] = [c for c in fake.sent("sendPhoto") if str(c.params["chat_id"]) == str(GROUP)]
                    assert sent.params["photo"]["sha256"] == key[:-4] and sent.params["caption"] == card_text
                    assert sha(await svc_b.photos.get(key)) == key[:-4]
                    await svc_a.photos.delete(key)  # as retention on A does
                    with pytest.raises(PhotoDeleted):
                        await svc_b.photos.get(key)
                else:
                    assert not fake.sent("sendPhoto")
                    assert card_text.endswith(text(Msg("card.photo_missing"), "th"))
                    with pytest.raises(PhotoMissing):
                        await svc_b.photos.get(key)


def test_serve_stops_in_one_line_when_the_bucket_does_not_answer(s3_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAMJAI_", "AWS_"))}
    env.update(s3_server.env("no-such-bucket-here"))
    env.update({"NAMJAI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db", "NAMJAI_PORT": str(free_port()),
                "NAMJAI_SANDBOX": "false", "NAMJAI_SCHEDULER": "false"})
    done = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: photo store s3://no-such-bucket-here/photos at {s3_server.endpoint}: the bucket 'no-such-bucket-here' does not exist"
    )
