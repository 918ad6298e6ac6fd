"""Personal data only while a rule keeps it (issue 10, PDPA), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.app import prune_personal
from bot.retention import ORPHAN_GRACE, retention
from storage import repo
from storage.models import InboxEvent
from tests.conftest import TABLES, jpeg
from tests.fake_line import event_from
from tests.test_e2e_sandbox import CHONBURI_TOWN, consent, full_report
from tests.test_line_e2e import GROUP, STAFF, VOLUNTEER, bind_group


async def _all_rows(db) -> str:
    """Every row of every table, as one text (what an auditor reading the database would see)."""
    out = []
    async with db.engine.connect() as conn:
        for table in TABLES.split(", "):
            for row in (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all():
                out.append(f"{table}: {tuple(row)}")
    return "\n".join(out)


def _store_files(root: Path) -> list[Path]:
    """Every file under the store's folder, deletion markers included: a forgotten photo leaves
    not even its key."""
    return [p for p in root.rglob("*") if p.is_file()]


async def test_a_volunteer_who_declines_leaves_nothing_behind(sandbox):
    """"We have kept nothing" is true: after the decline (and one prune, as the sweeper does) no
    table, no photo file and, on SQLite, no byte of the database file or its WAL holds the
    volunteer's id, name, text, photo or location."""
    svc = sandbox.services
    v = sandbox.volunteer("niran")  # chat u-niran, user niran, name Niran
    assert "ประกาศความเป็นส่วนตัว" in await v.send("สวัสดีค่ะ ฉันเห็นคุณยายนอนอยู่ใต้สะพานลอย")
    before = await v.photo(jpeg())
    assert "ยังไม่ได้เก็บรูป" in before  # not stored before consent
    await v.location(*CHONBURI_TOWN)
    declined = await v.choose("consent:no")
    assert "เราไม่ได้เก็บข้อมูลใด ๆ ไว้" in declined and "1300" in declined
    await sandbox.settle()
    await prune_personal(svc)

    rows = await _all_rows(svc.db)
    for needle in ("niran", "Niran", "สะพานลอย", f"{CHONBURI_TOWN[0]}", f"{CHONBURI_TOWN[1]}"):
        assert needle not in rows, (needle, [r for r in rows.splitlines() if needle in r])
    assert await svc.photos.stored() == []
    assert _store_files(Path(svc.settings.photo_dir)) == []
    if svc.db.is_sqlite:
        await svc.db.checkpoint()
        path = Path(svc.db.url.split("///", 1)[1])
        raw = path.read_bytes() + (Path(str(path) + "-wal").read_bytes() if Path(str(path) + "-wal").exists() else b"")
        for needle in ("u-niran", "Niran", "สะพานลอย", f"{CHONBURI_TOWN[0]}"):
            assert needle.encode() not in raw, needle
    # the next message starts again with the notice: nothing remembered (its old messages are gone,
    # so the transcript starts again too: SQLite may reuse their row ids)
    v.seen = 0
    assert "ประกาศความเป็นส่วนตัว" in await v.send("สวัสดี")


async def test_cancelled_draft_takes_its_photo_with_it(sandbox):
    svc = sandbox.services
    v = sandbox.volunteer("changed-mind")
    await consent(v)
    await v.photo(jpeg((1, 2, 3)))
    assert len(await svc.photos.stored()) == 1
    await v.command("cancel")  # a draft with a photo: asked once to confirm, nothing dropped yet
    assert len(await svc.photos.stored()) == 1
    await v.command("cancel")
    assert await svc.photos.stored() == []
    assert _store_files(Path(svc.settings.photo_dir)) == []  # not even a marker naming its key


async def test_replaced_photo_goes_but_one_a_report_keeps_stays(sandbox):
    svc = sandbox.services
    ref = await full_report(sandbox.volunteer("first"), photo=True)  # the same bytes as below
    async with svc.db.session() as s:
        [kept] = (await repo.report_by_ref(s, ref)).photos
    v = sandbox.volunteer("second")
    await consent(v)
    await v.photo(jpeg())  # the same photo: content-addressed, the same file
    await v.photo(jpeg((9, 9, 9)))
    assert len(await svc.photos.stored()) == 2
    await v.choose("edit:photo")  # reopened: the draft's photos are dropped
    await v.command("cancel")
    assert [k for k, _ in await svc.photos.stored()] == [kept]  # the report's photo stays


async def test_expired_draft_takes_its_photo_with_it(sandbox):
    from bot.scheduler import sweep

    svc = sandbox.services
    v = sandbox.volunteer("wandered-off")
    await consent(v)
    await v.photo(jpeg((4, 5, 6)))
    assert len(await svc.photos.stored()) == 1
    await sweep(svc, sandbox.clock() + timedelta(days=3), digests=False)
    assert await svc.photos.stored() == []
    assert _store_files(Path(svc.settings.photo_dir)) == []


async def test_retention_deletes_files_no_report_or_draft_names(sandbox):
    svc = sandbox.services
    ref = await full_report(sandbox.volunteer("kept"), photo=True)
    orphan = (await svc.photos.put(jpeg((7, 7, 7)))).key  # as a crash between download and draft leaves
    young = await retention(svc.db, svc.photos, sandbox.clock())
    assert young.orphan_files == 0  # a file just downloaded waits for its draft
    later = sandbox.clock() + ORPHAN_GRACE + timedelta(minutes=1)
    os.utime(svc.photos.path_for(orphan), (later.timestamp() - 3600 * 2,) * 2)
    dry = await retention(svc.db, svc.photos, later, dry_run=True)
    assert dry.orphan_files == 1 and await svc.photos.exists(orphan)
    done = await retention(svc.db, svc.photos, later)
    assert done.orphan_files == 1 and not await svc.photos.exists(orphan)
    async with svc.db.session() as s:
        [key] = (await repo.report_by_ref(s, ref)).photos
    assert await svc.photos.exists(key)  # named by a report: kept


async def test_processed_inbox_rows_lose_their_payload_after_the_window(sandbox):
    svc = sandbox.services
    await full_report(sandbox.volunteer("window"), photo=False)
    assert (await prune_personal(svc))["inbox"] == 0  # processed just now: kept a day
    sandbox.clock.advance(hours=svc.settings.inbox_payload_hours, minutes=1)
    assert (await prune_personal(svc))["inbox"] > 0
    async with svc.db.session() as s:
        rows = (await s.exec(sa.select(InboxEvent.event_id, InboxEvent.status, InboxEvent.payload))).all()
    assert rows and all(payload == {} and status == "done" and event_id for event_id, status, payload in rows)


async def test_line_media_is_fetched_only_when_the_flow_keeps_it(line):
    """Never before consent, never from a staff group; after consent, in the volunteer's chat."""
    fake = line.fake

    def fetched():
        return [c.path for c in fake.calls if c.path.endswith("/content")]

    staff = await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    answer = await v.image(jpeg((10, 10, 10)), message_id="before-consent")
    assert "ยังไม่ได้เก็บรูป" in answer and fetched() == []
    fake.contents["in-group"] = jpeg((20, 20, 20))
    await line.send(event_from("image", user=STAFF, group=GROUP, id="in-group"))
    assert fetched() == [] and await line.services.photos.stored() == []
    await v.postback("consent:yes")
    assert "ได้รับรูปแล้ว" in await v.image(jpeg((30, 30, 30)), message_id="after-consent")
    assert fetched() == ["/v2/bot/message/after-consent/content"]
    assert len(await line.services.photos.stored()) == 1
    assert staff is not None
