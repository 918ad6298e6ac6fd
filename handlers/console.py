"""The web console (issue 13): sign-in by a one-time link, the reports list, a report, acting on
it, the fiscal-year figures, exports. A thin adapter: who sees what is `flows.console`, what an
action does is the staff desk's (through `services.console`), the figures are `flows.figures`.

Sessions: aiohttp-session with the database as its store (`DbStorage`): the cookie carries a
random key, the row its SHA-256; any replica serves any session. Cookies are HttpOnly,
SameSite=Lax, Secure when the public URL is HTTPS; every POST carries the session's CSRF token.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session, new_session
from aiohttp_session import setup as session_setup

from flows import cards as cardflow
from flows import console as rules
from flows import figures as fig
from flows.deadlines import load_policy
from flows.followup import RATINGS
from flows.model import Msg
from flows.status import Outcome, Status, allowed_actions
from handlers.base import SERVICES
from storage import console_repo as crepo
from storage import repo
from storage.boundaries import PROVINCES_FILE
from storage.photos import PhotoDeleted, media_type

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
COOKIE = "namjai_console"
WHO = ("homeless", "begging", "child", "elderly", "disabled", "sick", "mental", "foreign", "other")
BANGKOK = timezone(timedelta(hours=7))
ACTIONS = ("ack", "onsite", "close", "transfer", "reopen", "comment")
PAGE_SIZE = 50  # the list's page
EXPORT_COLUMNS = ("ref", "received", "status", "urgent", "team", "province", "district", "subdistrict",
                  "who", "count", "urgency", "law_track", "outcome", "acknowledged", "on_site", "closed", "reporter")


@cache
def _templates():
    """The pages' templates (jinja2 is imported by the first page served, not at start: 2 MiB)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]))


class DbStorage(AbstractStorage):
    """aiohttp-session's store in the `console_sessions` table (expiry on the app's clock)."""

    def __init__(self, secure: bool):
        super().__init__(cookie_name=COOKIE, max_age=int(rules.SESSION_TTL.total_seconds()), httponly=True,
                         samesite="Lax", secure=secure, path="/console")

    async def load_session(self, request: web.Request) -> Session:
        key = self.load_cookie(request)
        if key:
            svc = request.app[SERVICES]
            async with svc.db.session() as s:
                row = await crepo.session_get(s, key, svc.clock())
            if row is not None:
                # expiry is the row's, on the app's clock; aiohttp-session's own check (wall clock
                # against "created") is given nothing to refuse
                return Session(key, data={"created": int(time.time()), "session": row.data}, new=False, max_age=self.max_age)
        return Session(None, data=None, new=True, max_age=self.max_age)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        svc = request.app[SERVICES]
        key = session.identity
        async with svc.db.transaction() as s:
            if session.empty:
                if key:
                    await crepo.session_end(s, key, svc.clock())
                self.save_cookie(response, "", max_age=None)
                return
            data = dict(session)
            if key is None:
                key = secrets.token_urlsafe(32)
                await crepo.session_create(s, key, data, svc.clock(), rules.SESSION_TTL)
            else:
                await crepo.session_save(s, key, data)
        self.save_cookie(response, key, max_age=self.max_age)


def setup(app: web.Application, secure: bool = False) -> None:
    session_setup(app, DbStorage(secure))
    app.router.add_get("/console/login/{token}", login_page)
    app.router.add_post("/console/login/{token}", login)
    app.router.add_get("/console", to_list)
    app.router.add_get("/console/", reports_page)
    app.router.add_get("/console/reports/{id:\\d+}", report_page)
    app.router.add_get("/console/reports/{id:\\d+}/photos/{n:\\d+}", photo)
    app.router.add_post("/console/reports/{id:\\d+}/act", act)
    app.router.add_get("/console/figures", figures_page)
    app.router.add_get("/console/map", map_page)
    app.router.add_get("/console/map.json", map_data)
    app.router.add_get("/console/provinces.geojson", provinces)
    app.router.add_get("/console/export.{fmt:(csv|xlsx)}", export)
    app.router.add_post("/console/logout", logout)
    app.router.add_post("/console/lang", set_lang)
    app.router.add_static("/console/static/", STATIC)


# ---------------------------------------------------------------- helpers


class Ctx:
    """One request's signed-in person: their scope, language, and the catalogue in it."""

    def __init__(self, request: web.Request, session: Session):
        self.request = request
        self.svc = request.app[SERVICES]
        self.session = session
        self.data = dict(session)
        self.scope = rules.Scope.from_dict(self.data["scope"])
        self.lang = self.data.get("lang", "th")

    @property
    def places(self):
        if not hasattr(self, "_places"):
            self._places = self.svc.engine.reports.context()
        return self._places

    @property
    def team_ids(self):
        return None if self.scope.team_ids is None else sorted(self.scope.team_ids)

    def t(self, key: str, **params) -> str:
        return self.svc.text(Msg(key, params), self.lang)

    def when(self, at) -> str:
        return self.svc.fmt_time(at, self.lang) if at else ""

    def render(self, name: str, status: int = 200, **kw) -> web.Response:
        html = _templates().get_template(f"console/{name}").render(c=self, t=self.t, when=self.when, **kw)
        return web.Response(text=html, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"})


def _page_text(svc, key: str, status: int) -> web.Response:
    return web.Response(text=svc.both(Msg(key)), status=status, content_type="text/plain", headers={"Referrer-Policy": "no-referrer"})


async def _ctx(request: web.Request) -> Ctx:
    session = await get_session(request)
    if session.new or "scope" not in session:
        raise web.HTTPUnauthorized(text=request.app[SERVICES].both(Msg("console.link_refused")))
    return Ctx(request, session)


def _not_found(c: Ctx) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=c.t("console.not_found"))


async def _csrf(c: Ctx) -> dict:
    form = dict(await c.request.post())
    if not hmac.compare_digest(str(form.get("csrf", "")), c.data.get("csrf", "")):
        raise web.HTTPForbidden(text=c.t("console.bad_csrf"))
    return form


async def _teams(c: Ctx) -> list:
    async with c.svc.db.session() as s:
        teams = await crepo.teams_brief(s)
    return [t for t in teams if c.scope.sees(t.id)]


def _team_name(team, lang: str) -> str:
    return "" if team is None else (team.name_th if lang == "th" else team.name_en)


def _date(text: str | None):
    if not text:
        return None
    try:
        d = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return None
    return d.replace(tzinfo=BANGKOK).astimezone(timezone.utc)


def _filter(c: Ctx, q, teams) -> crepo.ListFilter:
    team = next((t for t in teams if t.code == q.get("team")), None)
    until = _date(q.get("until"))
    status = q.get("status") or "open"
    if status not in ("open", "all", *[s.value for s in Status]):
        status = "open"
    overdue = q.get("overdue") == "1"
    return crepo.ListFilter(
        status=status,
        urgent={"1": True, "0": False}.get(q.get("urgent", "")),
        # overdue in the list: open past the shortest first close deadline of policy.yaml (7 days)
        overdue_before=c.svc.clock() - _close_deadline() if overdue else None,
        category=q.get("category") if q.get("category") in WHO else None,
        team_id=team.id if team else None,
        since=_date(q.get("since")),
        until=until + timedelta(days=1) if until else None,
        area=q.get("area") if (q.get("area") or "").isdigit() else None,
        limit=PAGE_SIZE,
        offset=(_page(q.get("page")) - 1) * PAGE_SIZE,
    )


def _page(text: str | None) -> int:
    return int(text) if text and text.isdigit() and 0 < int(text) < 100_000 else 1


def _close_deadline() -> timedelta:
    policy = load_policy()
    m = next((m for m in policy.normal.milestones if m.name == "close"), None)
    return m.at[0] if m else timedelta(days=7)


def _place(c: Ctx, r) -> str:
    ctx = c.places
    code = r.subdistrict_code or r.district_code or r.province_code
    parts = [ctx.place_name(x, c.lang) for x in (r.subdistrict_code, r.district_code, r.province_code) if x]
    return " · ".join(p for p in parts if p) if code else ""


def pseudonym(r) -> str:
    """The reporter, as the export shows them: a stable pseudonym, never the platform id."""
    if not r.reporter_user:
        return ""
    return "R-" + hashlib.sha256(f"{r.reporter_platform}:{r.reporter_user}".encode()).hexdigest()[:10]


# ---------------------------------------------------------------- sign-in


async def login_page(request: web.Request) -> web.Response:
    """The link's page: a button that spends it. Chat apps fetch a posted link for its preview
    (Telegram, LINE): a GET must not spend it."""
    svc = request.app[SERVICES]
    token = request.match_info["token"]
    peek = await svc.console.peek(token)
    if peek is None:
        return _page_text(svc, "console.link_refused", 403)
    name, lang = peek
    html = _templates().get_template("console/login.html").render(
        t=lambda key, **p: svc.text(Msg(key, p), lang), lang=lang, name=name, token=token)
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})


async def login(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    data = await svc.console.sign_in(request.match_info["token"])
    if data is None:
        return _page_text(svc, "console.link_refused", 403)
    old = await get_session(request)
    if not old.new and old.identity:  # the previous session of this browser ends
        async with svc.db.transaction() as s:
            await crepo.session_end(s, old.identity, svc.clock())
    session = await new_session(request)  # a fresh identity: a fixed session is never reused
    session.update(data)
    raise web.HTTPSeeOther("/console/")


async def logout(request: web.Request) -> web.Response:
    c = await _ctx(request)
    await _csrf(c)
    c.session.invalidate()
    return _page_text(c.svc, "console.signed_out", 200)


async def set_lang(request: web.Request) -> web.Response:
    c = await _ctx(request)
    form = await _csrf(c)
    if form.get("lang") in ("th", "en"):
        c.session["lang"] = form["lang"]
    raise web.HTTPSeeOther(str(form.get("next") or "/console/") if str(form.get("next", "")).startswith("/console") else "/console/")


async def to_list(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


# ---------------------------------------------------------------- the list


async def reports_page(request: web.Request) -> web.Response:
    c = await _ctx(request)
    teams = await _teams(c)
    f = _filter(c, request.query, teams)
    async with c.svc.db.session() as s:
        rows, total, counts = await crepo.reports_page(s, c.team_ids, f)
    by_id = {t.id: t for t in teams}
    now = c.svc.clock()
    items = [
        {"r": r, "team": _team_name(by_id.get(r.team_id), c.lang), "place": _place(c, r),
         "age": int((now - r.created_at).total_seconds() // 3600)}
        for r in rows
    ]
    page = f.offset // f.limit + 1
    pages = max(1, -(-total // f.limit))
    others = "&".join(f"{k}={v}" for k, v in ((k, quote(v)) for k, v in request.query.items() if k != "page"))
    return c.render("list.html", items=items, total=total, counts=counts, teams=teams, q=request.query,
                    statuses=[s.value for s in Status], who=WHO, query=request.query_string,
                    page=page, pages=pages, others=others)


# ---------------------------------------------------------------- a report


async def _report(c: Ctx, report_id: int):
    async with c.svc.db.session() as s:
        r = await crepo.report_in_scope(s, report_id, c.team_ids)
        if r is None:
            raise _not_found(c)
        history = await repo.history(s, r.id)
        view = await c.svc.engine.reports.view(s, r, lang=c.lang)
        views = await crepo.access_count(s, r.id)
        team = await repo.team_get(s, r.team_id)
    return r, history, view, views, team


async def report_page(request: web.Request) -> web.Response:
    c = await _ctx(request)
    r, history, view, views, team = await _report(c, int(request.match_info["id"]))
    ctx = c.svc.engine.reports.context()
    card = cardflow.card(view, lambda code: ctx.province_name(code, c.lang))
    facts = [c.svc.text(m, c.lang) for m in card.lines]
    async with c.svc.db.session() as s:
        transfer_to = [t for t in await repo.teams_all(s) if t.id != r.team_id]
    rows = []
    for e in history:
        detail = e.detail or {}
        extra = (detail.get("comment") or (c.t(f"outcome.{detail['outcome']}") if detail.get("outcome") else "")
                 or (c.t(f"rating.{detail['rating']}") if detail.get("rating") in RATINGS else "") or detail.get("to_team", ""))
        rows.append({"at": c.when(e.at), "who": e.actor_name or e.actor or "", "action": e.action,
                     "status": c.t(f"status.{e.to_status}") if e.to_status else "", "extra": extra})
    actions = allowed_actions(Status(r.status))
    if r.status == Status.CLOSED and c.scope.role.value in ("supervisor", "admin"):
        actions = [*actions, "reopen"]
    return c.render("report.html", r=r, facts=facts, history=rows, views=views, team=_team_name(team, c.lang),
                    place=_place(c, r), actions=actions, outcomes=[o.value for o in Outcome], transfer_to=transfer_to,
                    photos=range(len(r.photos or [])) if not r.photos_purged_at else range(0), notice=_notice(c, request.query.get("msg")))


def _notice(c: Ctx, key: str | None) -> str | None:
    """The outcome of the last action, named by a catalogue key in the redirect (only those)."""
    if not key or not key.startswith(("console.", "staff.", "err.")):
        return None
    try:
        return c.t(key)
    except KeyError:
        return None


async def photo(request: web.Request) -> web.Response:
    c = await _ctx(request)
    report_id, n = int(request.match_info["id"]), int(request.match_info["n"])
    async with c.svc.db.session() as s:
        r = await crepo.report_in_scope(s, report_id, c.team_ids)
    if r is None or r.photos_purged_at is not None or n >= len(r.photos or []):
        raise _not_found(c)
    key = r.photos[n]
    try:
        data = await c.svc.photos.get(key)
    except (PhotoDeleted, KeyError, ValueError):
        raise _not_found(c)
    async with c.svc.db.transaction() as s:
        await repo.access_log(s, f"console:{c.data['user']}", f"photo:{n}", r.id, c.svc.clock())
    return web.Response(body=data, content_type=media_type(key), headers={"Cache-Control": "private, no-store"})


async def act(request: web.Request) -> web.Response:
    c = await _ctx(request)
    form = await _csrf(c)
    report_id = int(request.match_info["id"])
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        raise web.HTTPBadRequest(text=c.t("staff.unknown_action"))
    arg = str(form.get("outcome", "") if action == "close" else form.get("team", "") if action == "transfer" else "")
    note = str(form.get("note", "")).strip()[:1000] or None
    decision = await c.svc.console.act(c.data, report_id, action, arg, note)
    if decision is None:
        raise _not_found(c)
    c.svc.outbox.kick()  # the cards and the reporter's message are in the outbox: deliver now
    msg = "console.done" if decision.ok else decision.error
    raise web.HTTPSeeOther(f"/console/reports/{report_id}?msg={msg}")


# ---------------------------------------------------------------- figures


async def figures_page(request: web.Request) -> web.Response:
    c = await _ctx(request)
    now = c.svc.clock()
    try:
        fy = int(request.query.get("fy", "")) - 543
    except ValueError:
        fy = fig.fiscal_year(now)
    teams = await _teams(c)
    team = next((t for t in teams if t.code == request.query.get("team")), None)
    ids = [team.id] if team else c.team_ids
    async with c.svc.db.session() as s, c.svc.db.session() as other:  # two connections: two scans at once
        by_team = await crepo.figures_by_team(s, ids, fy, now, load_policy(), other=None if c.svc.db.is_sqlite else other)
    total = by_team[None]
    per_team = [(t, by_team[t.id]) for t in (teams if team is None else [team]) if t.id in by_team]
    labels = [str(m) for m in fig.MONTHS_FY]
    chart = fig.bar_chart_svg(
        [(c.t("console.received"), total.monthly_received, "#2b6cb0"), (c.t("console.closed"), total.monthly_closed, "#38a169")],
        labels, c.t("console.monthly"),
    )
    return c.render("figures.html", fy=fy, be=fig.be(fy), total=total, per_team=per_team, chart=chart, teams=teams,
                    team=team, who=WHO, milestones=fig.MILESTONES, ratings=RATINGS)


# ---------------------------------------------------------------- map


async def map_data(request: web.Request) -> web.Response:
    c = await _ctx(request)
    teams = await _teams(c)
    f = _filter(c, request.query, teams)
    async with c.svc.db.session() as s:
        points, n = await crepo.map_points_json(s, c.team_ids, f)
    # compact: one array per point (a dict each would double the bytes of 5,000 points), built as
    # JSON by the database
    head = json.dumps({"fields": ["id", "ref", "lat", "lon", "status", "urgent"], "limit": crepo.MAP_LIMIT,
                       "truncated": n >= crepo.MAP_LIMIT})
    return web.Response(text=head[:-1] + ', "points": ' + points + "}", content_type="application/json")


async def provinces(request: web.Request) -> web.FileResponse:
    """The shipped province outlines, the map's base layer."""
    await _ctx(request)
    return web.FileResponse(PROVINCES_FILE, headers={"Content-Type": "application/geo+json", "Cache-Control": "private, max-age=86400"})


async def map_page(request: web.Request) -> web.Response:
    c = await _ctx(request)
    return c.render("map.html", query=request.query_string)


# ---------------------------------------------------------------- exports


def export_rows(c: Ctx, rows, by_id) -> list[list]:
    out = []
    for r in rows:
        out.append([
            r.ref, r.created_at.astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M"), r.status, "yes" if r.urgent else "no",
            by_id[r.team_id].code if r.team_id in by_id else "", r.province_code or "", r.district_code or "",
            r.subdistrict_code or "", " ".join(r.who or []), r.count or "", r.urgency or "", r.law_track, r.outcome or "",
            *[(x.astimezone(BANGKOK).strftime("%Y-%m-%d %H:%M") if x else "") for x in (r.acknowledged_at, r.on_site_at, r.closed_at)],
            pseudonym(r),
        ])
    return out


async def export(request: web.Request) -> web.Response:
    c = await _ctx(request)
    teams = await _teams(c)
    f = _filter(c, request.query, teams)
    f = crepo.ListFilter(**{**f.__dict__, "limit": 50_000, "offset": 0})
    async with c.svc.db.session() as s:
        rows, total, _ = await crepo.reports_list(s, c.team_ids, f)
    data = export_rows(c, rows, {t.id: t for t in teams})
    fmt = request.match_info["fmt"]
    async with c.svc.db.transaction() as s:
        await repo.access_log(s, f"console:{c.data['user']}", f"export:{fmt}:{len(data)}", None, c.svc.clock())
    name = f"namjai-reports-{c.svc.clock().astimezone(BANGKOK):%Y%m%d}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(EXPORT_COLUMNS)
        w.writerows(data)
        return web.Response(body=("\ufeff" + buf.getvalue()).encode("utf-8"), content_type="text/csv", charset="utf-8", headers=headers)
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("reports")
    ws.append(list(EXPORT_COLUMNS))
    for row in data:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return web.Response(body=out.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers=headers)
