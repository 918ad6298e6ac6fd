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
    r = RUN.invoke(app, ["locate", "17.9757", "102.6331", "--teams", str(EXAMPLE)])
    assert r.exit_code == 1 and "outside Thailand" in r.output


def test_locate_csv(env):
    src = env / "points.csv"
    src.write_text("lat,lon\n12.9277,100.8724\n13.3611,100.9847\n0,0\nnot,a number\n13.7500,100.4913\n", encoding="utf-8")
    out = env / "out.csv"
    r = RUN.invoke(app, ["locate", "--csv", str(src), "--out", str(out), "--teams", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == ["lat", "lon", "province_code", "province_name_th", "district_code", "team"]
    assert rows[1] == ["12.9277", "100.8724", "20", "ชลบุรี", "", "pattaya-city"]
    assert rows[2][2:] == ["20", "ชลบุรี", "", "pcdp-20"]
    assert rows[3] == ["0", "0", "", "", "", ""]  # outside Thailand: empty, not a guess
    assert rows[4][2] == "10" and len(rows) == 5  # the broken row is skipped


def test_teams_import_list_invite_and_grant(env):
    r = RUN.invoke(app, ["teams", "import", str(EXAMPLE)])
    assert r.exit_code == 0 and "81 teams created" in r.output
    r = RUN.invoke(app, ["teams", "import", str(EXAMPLE)])
    assert "0 teams created, 81 updated" in r.output
    r = RUN.invoke(app, ["teams", "list"])
    assert "pattaya-city" in r.output and "+area" in r.output and "(fallback)" in r.output
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


def test_db_upgrade_and_current(env):
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert RUN.invoke(app, ["db", "current"]).output.strip() == "empty"
    assert RUN.invoke(app, ["db", "upgrade"]).output.strip().endswith(f"schema at {head}")
    assert RUN.invoke(app, ["db", "current"]).output.strip() == head
