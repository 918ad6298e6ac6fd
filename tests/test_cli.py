"""The operator's command line, run as an operator would (typer's runner, a real database)."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.teams import EXAMPLE

RUN = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_locate_a_point_in_pattaya_and_outside_thailand(env):
    r = RUN.invoke(app, ["locate", "12.9277", "100.8724", "--teams", str(EXAMPLE)])
    assert r.exit_code == 0 and "20 ชลบุรี" in r.output and "team: pattaya-city" in r.output
    assert "district: 2004 บางละมุง (Bang Lamung)" in r.output
    assert "subdistrict: 200402 หนองปรือ (Nong Prue)" in r.output
    r = RUN.invoke(app, ["locate", "17.9757", "102.6331", "--teams", str(EXAMPLE)])
    assert r.exit_code == 1 and "outside Thailand" in r.output


def test_locate_names_the_neighbours_and_calls_impossible_coordinates_invalid(env):
    r = RUN.invoke(app, ["locate", "13.80", "100.52", "--teams", str(EXAMPLE)])  # Bang Sue, by Nonthaburi
    assert r.exit_code == 0
    assert "near the border with: 12 Nonthaburi" in r.output
    assert "pcdp-12 (Protection Centre for Destitute Persons, Nonthaburi)" in r.output
    r = RUN.invoke(app, ["locate", "--teams", str(EXAMPLE), "200", "100"])
    assert r.exit_code == 2 and "invalid coordinates" in r.output and "outside Thailand" not in r.output
    r = RUN.invoke(app, ["locate", "12.5", "100.95", "--teams", str(EXAMPLE)])  # the Gulf
    assert r.exit_code == 1 and "in the sea" in r.output and "Sattahip" in r.output


def test_locate_csv(env):
    src = env / "points.csv"
    src.write_text(
        "lat,lon\n12.9277,100.8724\n13.3611,100.9847\n0,0\nnot,a number\n13.7500,100.4913\n200,100\n12.5,100.95\n13.80,100.52\n",
        encoding="utf-8",
    )
    out = env / "out.csv"
    r = RUN.invoke(app, ["locate", "--csv", str(src), "--out", str(out), "--teams", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    assert "8 rows written" in r.output and "3 could not be read" in r.output  # stderr
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == [
        "lat", "lon", "province_code", "province_name_th", "district_code", "team",
        "district_name_th", "subdistrict_code", "subdistrict_name_th", "near", "error",
    ]
    assert rows[1] == ["12.9277", "100.8724", "20", "ชลบุรี", "2004", "pattaya-city", "บางละมุง", "200402", "หนองปรือ", "", ""]
    assert rows[2][2:6] == ["20", "ชลบุรี", "2001", "pcdp-20"] and rows[2][-1] == ""
    assert rows[3][:10] == ["0", "0"] + [""] * 8 and "invalid" in rows[3][10]  # not a guess
    assert rows[4][:2] == ["not", "a number"] and rows[4][10] == "not a number"  # kept, with its error
    assert rows[5][2] == "10" and rows[5][4] == "1001" and rows[5][7] == "100101"
    assert "invalid" in rows[6][10]
    assert rows[7][2] == "" and rows[7][10].startswith("in the sea")
    assert rows[8][2] == "10" and rows[8][9] == "12"  # near: the province the one-tap switch offers
    assert len(rows) == 9


def test_teams_import_list_invite_and_grant(env):
    r = RUN.invoke(app, ["teams", "import", str(EXAMPLE)])
    assert r.exit_code == 0 and "81 teams created" in r.output
    r = RUN.invoke(app, ["teams", "import", str(EXAMPLE)])
    assert "0 teams created, 81 updated" in r.output
    r = RUN.invoke(app, ["teams", "list"])
    lines = r.output.splitlines()
    assert lines[0].split() == ["CODE", "KIND", "PROVINCES", "AREA", "CHATS", "GOES-TO", "NAME"] and len(lines) == 82
    pattaya = next(line for line in lines if line.startswith("pattaya-city "))
    assert "municipality" in pattaya and "200402,200408" in pattaya
    assert "provincial centre" in next(line for line in lines if line.startswith("pcdp-20 "))
    assert "fallback" in next(line for line in lines if line.startswith("dsdw-national "))
    # aligned: every row's KIND column starts where the header's does
    col = lines[0].index("KIND")
    assert all(line[col - 2 : col] == "  " and line[col] != " " for line in lines[1:])
    r = RUN.invoke(app, ["teams", "invite", "pcdp-20", "--role", "supervisors"])
    assert r.exit_code == 0 and "/bind " in r.output
    assert RUN.invoke(app, ["teams", "invite", "no-such-team"]).exit_code == 2
    r = RUN.invoke(app, ["teams", "grant", "pcdp-20", "telegram:42", "supervisor"])
    assert r.exit_code == 0 and "supervisor of pcdp-20" in r.output


def test_a_broken_teams_file_is_refused_with_a_reason(env):
    bad = env / "teams.yaml"
    bad.write_text("teams:\n  - code: x\n    name_th: x\n    name_en: x\n    kind: provincial_centre\n    provinces: ['99']\n", encoding="utf-8")
    r = RUN.invoke(app, ["teams", "import", str(bad)])
    assert r.exit_code == 2 and "unknown province code 99" in r.output


@pytest.mark.parametrize(
    "extra, reason",
    [
        ("provinces: ['20']\n    subdistricts: ['209999']", "unknown subdistrict code 209999"),
        ("provinces: ['20']\n    districts: ['2099']", "unknown district code 2099"),
        ("provinces: ['20']\n    subdistricts: ['100101']", "subdistrict 100101 is not in the team's provinces"),
        ("provinces: ['20']\n    subdistricts: ['200402', '200402']", "listed twice"),
    ],
)
def test_team_area_codes_are_checked_against_geothai(env, extra, reason):
    bad = env / "teams.yaml"
    bad.write_text(f"teams:\n  - code: x\n    name_th: x\n    name_en: x\n    kind: municipality\n    {extra}\n", encoding="utf-8")
    r = RUN.invoke(app, ["teams", "import", str(bad)])
    assert r.exit_code == 2 and reason in r.output


def test_db_upgrade_and_current(env):
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert RUN.invoke(app, ["db", "current"]).output.strip() == "empty"
    assert RUN.invoke(app, ["db", "upgrade"]).output.strip().endswith(f"schema at {head}")
    assert RUN.invoke(app, ["db", "current"]).output.strip() == head


def test_console_link_is_printed_once_usable(env):
    import asyncio
    import re

    from storage import console_repo
    from storage.db import Database

    assert RUN.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert RUN.invoke(app, ["teams", "import", str(EXAMPLE)]).exit_code == 0
    r = RUN.invoke(app, ["console", "link", "pattaya-city", "sandbox:alice"])
    assert r.exit_code == 0, r.output
    token = re.search(r"http://127\.0\.0\.1:8080/console/login/(\S+)", r.output).group(1)
    assert RUN.invoke(app, ["console", "link", "nowhere", "sandbox:alice"]).exit_code == 2
    assert RUN.invoke(app, ["console", "link", "pattaya-city", "alice"]).exit_code == 2

    async def spend():
        from datetime import datetime, timezone

        db = Database(f"sqlite+aiosqlite:///{env}/cli.db")
        try:
            now = datetime.now(timezone.utc)
            async with db.transaction() as s:
                first = await console_repo.link_use(s, token, now)
                scope = dict(first.scope) if first else None
            async with db.transaction() as s:
                second = await console_repo.link_use(s, token, now)
            return scope, second
        finally:
            await db.dispose()

    scope, second = asyncio.run(spend())
    assert scope["role"] == "staff" and len(scope["team_ids"]) == 1 and second is None


def test_teams_list_on_a_new_database_says_what_to_do(env):
    r = RUN.invoke(app, ["teams", "list"])
    assert r.exit_code == 0 and "namjai teams import" in r.output


def test_version_and_help_in_whole_sentences(env):
    r = RUN.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip().startswith("namjai ")
    r = RUN.invoke(app, ["--help"], env={"COLUMNS": "100"})
    # each command's help is one paragraph, wrapped only at the width: no line ends mid-sentence
    # followed by a line that starts like a new one ("ago" / "and detaches")
    retention = [line for line in r.output.splitlines() if "NAMJAI_PHOTO_RETENTION_DAYS" in line][0]
    assert "NAMJAI_PHOTO_RETENTION_DAYS ago and" in retention


def test_serve_on_a_taken_port_is_one_line(env):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        r = RUN.invoke(app, ["serve", "--host", "127.0.0.1", "--port", str(taken.getsockname()[1])])
    finally:
        taken.close()
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "already in use" in lines[0] and "--port" in lines[0]


def test_serve_says_where_the_data_lives_and_migrations_are_quiet(env):
    """A real `namjai serve --port` process: its first lines name the database and photo folder
    (under the current folder), and Alembic's "Context impl" chatter is not shown."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=env,
        env={**os.environ, "NAMJAI_SCHEDULER": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer /healthz within 60 s")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
    assert f"database: {env / 'var' / 'namjai.db'}" not in out  # env sets DATABASE_URL to cli.db
    assert f"database: {env / 'cli.db'}" in out and f"photos:   {env / 'var' / 'photos'}" in out
    assert "Context impl" not in out and "Will assume" not in out
