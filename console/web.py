"""The staff console web module: ``mount(app)`` adds it to the product's ASGI app at ``/console/``.

Server-rendered pages (Jinja2, autoescaped) with HTMX for live parts (the
handoff inbox and a held conversation poll every few seconds). HTMX is served
from ``console/static/vendor`` (installed by ``scripts/setup.sh`` from the npm
package ``htmx.org``; never a CDN). Every response under ``/console`` carries a
strict Content-Security-Policy with no inline script.

Every route checks the session and the role on the server: ``agent`` (inbox,
conversations, replies, tags, notes), ``supervisor`` (+ annotation, review
queues' export, dashboards, exports, unmasking with a reason), ``admin`` (+ staff
accounts). Every form carries the session's CSRF token.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from console import annotations as annotations_mod
from console import audit, staff_actions
from console.accounts import (
    AccountError,
    LoginThrottled,
    Staff,
    add_staff,
    authenticate,
    list_staff,
    set_disabled,
)
from console.i18n import LANGUAGES, t
from console.queries import FilterError, Filters, Reader, Scope
from console.sessions import (
    COOKIE,
    create_session,
    end_session,
    load_session,
    login_csrf,
    sign,
    unsign,
)
from console.settings import ConsoleSettings, get_console_settings

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
LANG_COOKIE = "billtalk_console_lang"
PRE_COOKIE = "billtalk_console_pre"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
CANNED = {
    "en": [
        "Thanks for waiting, I'm looking into this now.",
        "Could you tell me your unit number, please?",
        "Your payment has been received. Is there anything else?",
        "I'll hand you back to the assistant now. Have a nice day!",
    ],
    "zh": [
        "感谢您的耐心等待，我正在为您处理。",
        "请告诉我您的房号。",
        "您的付款已收到，还有其他需要帮助的吗？",
        "现在把您交还给智能助手，祝您愉快！",
    ],
}


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form."""


class Forbidden(Exception):
    """The staff member's role or buildings do not allow this."""


class NotFound(Exception):
    """No such object (or not visible to this staff member)."""


class BadRequest(Exception):
    """A malformed request (the message is shown to the staff member)."""


class SecurityHeaders:
    """Add the console's security headers to every ``/console`` response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not str(scope.get("path", "")).startswith(f"{PREFIX}/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Ctx:
    """The request's staff member, CSRF token and language."""

    staff: Staff
    csrf: str
    lang: str
    scope: Scope


class Console:
    """The console's state: engines, settings, templates."""

    def __init__(
        self, engine: Engine, billing_engine: Engine | None, secret: str, settings: ConsoleSettings
    ) -> None:
        self.engine = engine
        self.reader = Reader(engine, billing_engine)
        self.billing_engine = billing_engine or engine
        self.secret = secret
        self.settings = settings
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["t"] = t
        self.templates.env.globals["prefix"] = PREFIX
        self.templates.env.filters["tojson_pretty"] = lambda v: json.dumps(
            v, ensure_ascii=False, indent=1, default=str
        )
        self.templates.env.filters["wait"] = _format_wait

    # -- helpers ------------------------------------------------------------------

    def lang(self, request: Request) -> str:
        lang = request.cookies.get(LANG_COOKIE, "")
        if lang in LANGUAGES:
            return lang
        accept = request.headers.get("accept-language", "")
        return "zh" if accept.lower().startswith("zh") else "en"

    def ctx(self, request: Request, role: str = "agent") -> Ctx:
        token = unsign(self.secret, request.cookies.get(COOKIE))
        loaded = (
            load_session(self.engine, token, timedelta(minutes=self.settings.idle_minutes))
            if token
            else None
        )
        if loaded is None:
            raise LoginRequired()
        staff, csrf = loaded
        if not staff.can(role):
            raise Forbidden()
        return Ctx(staff, csrf, self.lang(request), Scope.of(staff))

    async def form(self, request: Request, ctx: Ctx) -> FormData:
        form = await request.form()
        sent = str(form.get("csrf_token") or request.headers.get("x-csrf-token") or "")
        if not sent or not hmac.compare_digest(sent, ctx.csrf):
            raise Forbidden()
        return form

    def render(
        self, request: Request, name: str, ctx: Ctx | None, status: int = 200, **data: Any
    ) -> HTMLResponse:
        lang = ctx.lang if ctx else self.lang(request)
        return self.templates.TemplateResponse(
            request,
            name,
            {"ctx": ctx, "lang": lang, "canned": CANNED[lang], **data},
            status_code=status,
        )

    def conversation(self, ctx: Ctx, conversation_id: str) -> Any:
        row = self.reader.visible(ctx.scope, conversation_id)
        if row is None:
            raise NotFound()
        return row


def _format_wait(seconds: int) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _safe_next(value: str | None) -> str:
    """Only a path inside the console (never another site) to go to after login."""
    if value and value.startswith(f"{PREFIX}/") and "\\" not in value and "//" not in value:
        return value
    return f"{PREFIX}/"


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _turn_view(turn: Any, *, unmasked: bool) -> dict[str, Any]:
    replies = json.loads(turn.replies or "[]")
    verification = [
        {"kind": v.get("kind"), "decision": v.get("decision"), "score": v.get("score")}
        for v in json.loads(turn.verification or "[]")
    ]
    return {
        "id": turn.id,
        "turn": turn.turn,
        "at": turn.at,
        "text": (turn.text_raw if unmasked else turn.text_masked),
        "button": turn.button_payload,
        "language": turn.language,
        "intent": turn.intent,
        "confidence": turn.confidence,
        "entities": json.loads(turn.entities or "[]"),
        "actions": json.loads(turn.actions or "[]"),
        "replies": [r.get("text", "") for r in replies if isinstance(r, dict)],
        "verification": verification,
        "payments": json.loads(turn.payment_ids or "[]"),
        "latency_ms": turn.latency_ms,
        "error": turn.error,
    }


def _event_view(event: Any) -> dict[str, Any]:
    try:
        data = json.loads(event.data or "{}")
    except ValueError:
        data = {}
    text = data.get("text") if isinstance(data, dict) else None
    return {
        "id": event.id,
        "after_turn": event.after_turn,
        "at": event.at,
        "event": event.event,
        "actor": event.actor,
        "text": text if isinstance(text, str) else None,
        "staff": (event.actor or "").startswith("staff:"),
    }


def _items(turns: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns and events interleaved in log order (an event follows the turn it came after)."""
    out: list[dict[str, Any]] = []
    pending = sorted(events, key=lambda e: (e["after_turn"], e["id"]))
    i = 0
    for tv in turns:
        while i < len(pending) and pending[i]["after_turn"] < tv["turn"]:
            out.append({"kind": "event", **pending[i]})
            i += 1
        out.append({"kind": "turn", **tv})
    out.extend({"kind": "event", **e} for e in pending[i:])
    return out


def build_router(console: Console) -> Any:
    """The console's routes."""
    from fastapi import APIRouter

    r = APIRouter(prefix=PREFIX, include_in_schema=False)

    # -- login / logout / language ---------------------------------------------------

    @r.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
        resp = console.render(
            request,
            "login.html",
            None,
            next=_safe_next(next),
            login_csrf=login_csrf(console.secret, nonce),
            error=None,
        )
        _set_cookie(resp, console, PRE_COOKIE, nonce)
        return resp

    @r.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(PRE_COOKIE) or ""
        sent = str(form.get("csrf_token") or "")
        next_url = _safe_next(str(form.get("next") or ""))
        address = request.client.host if request.client else "unknown"
        username = str(form.get("username") or "").strip()
        error: str | None = None
        if not nonce or not hmac.compare_digest(sent, login_csrf(console.secret, nonce)):
            error, status = "session_expired", 400
        else:
            s = console.settings
            try:
                staff = await run_in_threadpool(
                    authenticate,
                    console.engine,
                    username,
                    str(form.get("password") or ""),
                    address,
                    max_per_username=s.max_failures_per_username,
                    max_per_address=s.max_failures_per_address,
                    window=timedelta(minutes=s.throttle_window_minutes),
                )
            except LoginThrottled:
                audit.record(console.engine, f"address:{address}", "login_throttled", username)
                error, status = "login_throttled", 429
            else:
                if staff is not None:
                    token, _ = create_session(console.engine, staff)
                    audit.record(console.engine, f"staff:{staff.username}", "login", address)
                    done = _redirect(next_url)
                    _set_cookie(done, console, COOKIE, sign(console.secret, token))
                    done.delete_cookie(PRE_COOKIE, path=PREFIX)
                    return done
                audit.record(console.engine, f"address:{address}", "login_failed", username)
                error, status = "login_failed", 401
        nonce = nonce or secrets.token_urlsafe(24)
        resp = console.render(
            request,
            "login.html",
            None,
            status=status,
            next=next_url,
            login_csrf=login_csrf(console.secret, nonce),
            error=error,
        )
        _set_cookie(resp, console, PRE_COOKIE, nonce)
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        ctx = console.ctx(request)
        await console.form(request, ctx)
        token = unsign(console.secret, request.cookies.get(COOKIE))
        if token:
            end_session(console.engine, token)
        audit.record(console.engine, f"staff:{ctx.staff.username}", "logout")
        resp = _redirect(f"{PREFIX}/login")
        resp.delete_cookie(COOKIE, path=PREFIX)
        return resp

    @r.get("/lang/{code}")
    def set_language(request: Request, code: str, next: str = "") -> Response:
        if code not in LANGUAGES:
            raise NotFound()
        resp = _redirect(_safe_next(next))
        _set_cookie(resp, console, LANG_COOKIE, code, max_age=365 * 86400)
        return resp

    # -- home, inbox -----------------------------------------------------------------

    @r.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        console.ctx(request)
        return _redirect(f"{PREFIX}/inbox")

    def render_inbox(request: Request, template: str) -> Response:
        ctx = console.ctx(request)
        rows = console.reader.inbox(ctx.scope)
        units = console.reader.units([r["household_id"] for r in rows])
        return console.render(request, template, ctx, rows=rows, units=units)

    @r.get("/inbox", response_class=HTMLResponse)
    def inbox(request: Request) -> Response:
        return render_inbox(request, "inbox.html")

    @r.get("/inbox/rows", response_class=HTMLResponse)
    def inbox_rows(request: Request) -> Response:
        """The inbox's rows alone, for the page's periodic refresh."""
        return render_inbox(request, "inbox_rows.html")

    # -- conversation list -------------------------------------------------------------

    @r.get("/conversations", response_class=HTMLResponse)
    def conversations(request: Request) -> Response:
        ctx = console.ctx(request)
        query = dict(request.query_params)
        try:
            filters = Filters.from_query(query)
            rows, cursor = console.reader.conversations(
                filters,
                ctx.scope,
                after=query.get("after") or None,
                limit=console.settings.page_size,
            )
        except FilterError as exc:
            raise BadRequest(str(exc)) from exc
        units = console.reader.units([r["household_id"] for r in rows])
        next_url = (
            f"{PREFIX}/conversations?{urlencode({**filters.as_query(), 'after': cursor})}"
            if cursor
            else None
        )
        return console.render(
            request,
            "conversations.html",
            ctx,
            rows=rows,
            units=units,
            f=filters,
            facets=console.reader.facets(),
            next_url=next_url,
            export_query=urlencode(filters.as_query()),
        )

    # -- one conversation ----------------------------------------------------------------

    def transcript(
        request: Request,
        ctx: Ctx,
        conversation_id: str,
        *,
        unmasked: bool = False,
        reason: str = "",
    ) -> Response:
        conv = console.conversation(ctx, conversation_id)
        before_raw = request.query_params.get("before")
        before = int(before_raw) if before_raw and before_raw.isdigit() else None
        turns = console.reader.turns(
            conversation_id, before=before, limit=console.settings.transcript_page
        )
        tviews = [_turn_view(x, unmasked=unmasked) for x in turns]
        first = tviews[0]["turn"] if tviews else None
        last_turn = tviews[-1]["turn"] if tviews else (conv.turns or 0)
        events = [_event_view(e) for e in console.reader.events(conversation_id)]
        lo = first if first is not None else 0
        hi = last_turn if before is not None else 10**9
        shown_events = [e for e in events if lo - 1 <= e["after_turn"] <= hi or not tviews]
        review = console.reader.review(conversation_id)
        return console.render(
            request,
            "conversation.html",
            ctx,
            conv=conv,
            unit=console.reader.units([conv.household_id or ""]).get(conv.household_id or ""),
            items=_items(tviews, shown_events),
            earlier=first if first is not None and first > 1 else None,
            last_turn=conv.turns or 0,
            last_event=events[-1]["id"] if events else 0,
            annotations=console.reader.annotations_for([x["id"] for x in tviews]),
            tags=console.reader.tags(conversation_id),
            notes=console.reader.notes(conversation_id),
            review=review,
            unmasked=unmasked,
            reason=reason,
            submission=secrets.token_urlsafe(16),
        )

    @r.get("/conversations/{conversation_id}", response_class=HTMLResponse)
    def conversation(request: Request, conversation_id: str) -> Response:
        ctx = console.ctx(request)
        return transcript(request, ctx, conversation_id)

    @r.post("/conversations/{conversation_id}/unmask", response_class=HTMLResponse)
    async def unmask(request: Request, conversation_id: str) -> Response:
        ctx = console.ctx(request, "supervisor")
        form = await console.form(request, ctx)
        console.conversation(ctx, conversation_id)
        reason = str(form.get("reason") or "").strip()
        if len(reason) < 5:
            raise BadRequest("give a reason (at least 5 characters) to unmask")
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            "unmask",
            conversation_id,
            {"reason": reason[:500]},
            conversation_id=conversation_id,
        )
        return transcript(request, ctx, conversation_id, unmasked=True, reason=reason)

    @r.get("/conversations/{conversation_id}/live", response_class=HTMLResponse)
    def live(
        request: Request, conversation_id: str, after_turn: int = 0, after_event: int = 0
    ) -> Response:
        ctx = console.ctx(request)
        conv = console.conversation(ctx, conversation_id)
        turns = [
            _turn_view(x, unmasked=False)
            for x in console.reader.turns(conversation_id, after=after_turn)
        ]
        events = [
            _event_view(e) for e in console.reader.events(conversation_id, after_id=after_event)
        ]
        return console.render(
            request,
            "live.html",
            ctx,
            conv=conv,
            items=_items(turns, events),
            last_turn=turns[-1]["turn"] if turns else after_turn,
            last_event=events[-1]["id"] if events else after_event,
            annotations={},
        )

    async def act(request: Request, conversation_id: str, role: str = "agent") -> Any:
        ctx = console.ctx(request, role)
        form = await console.form(request, ctx)
        console.conversation(ctx, conversation_id)
        return ctx, form

    def back(conversation_id: str) -> Response:
        return _redirect(f"{PREFIX}/conversations/{conversation_id}")

    @r.post("/conversations/{conversation_id}/take")
    async def take(request: Request, conversation_id: str) -> Response:
        ctx, _ = await act(request, conversation_id)
        staff_actions.take(console.engine, ctx.staff, conversation_id)
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/release")
    async def release(request: Request, conversation_id: str) -> Response:
        ctx, _ = await act(request, conversation_id)
        staff_actions.release(console.engine, ctx.staff, conversation_id)
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/resolve")
    async def resolve(request: Request, conversation_id: str) -> Response:
        ctx, _ = await act(request, conversation_id)
        staff_actions.release(console.engine, ctx.staff, conversation_id, resolved=True)
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/reply")
    async def reply(request: Request, conversation_id: str) -> Response:
        ctx, form = await act(request, conversation_id)
        text = str(form.get("text") or "").strip() or str(form.get("canned") or "").strip()
        try:
            staff_actions.reply(
                console.engine,
                ctx.staff,
                conversation_id,
                text,
                str(form.get("submission") or ""),
            )
        except staff_actions.ActionError as exc:
            raise BadRequest(str(exc)) from exc
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/tags")
    async def tag(request: Request, conversation_id: str) -> Response:
        ctx, form = await act(request, conversation_id)
        try:
            if form.get("remove"):
                staff_actions.remove_tag(
                    console.engine, ctx.staff, conversation_id, str(form.get("remove"))
                )
            else:
                staff_actions.add_tag(
                    console.engine, ctx.staff, conversation_id, str(form.get("tag") or "")
                )
                console.reader.forget_facets()
        except staff_actions.ActionError as exc:
            raise BadRequest(str(exc)) from exc
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/notes")
    async def note(request: Request, conversation_id: str) -> Response:
        ctx, form = await act(request, conversation_id)
        try:
            staff_actions.add_note(
                console.engine, ctx.staff, conversation_id, str(form.get("text") or "")
            )
        except staff_actions.ActionError as exc:
            raise BadRequest(str(exc)) from exc
        return back(conversation_id)

    @r.post("/conversations/{conversation_id}/reviewed")
    async def reviewed(request: Request, conversation_id: str) -> Response:
        ctx, form = await act(request, conversation_id)
        staff_actions.set_reviewed(
            console.engine, ctx.staff, conversation_id, str(form.get("reviewed") or "") == "yes"
        )
        return back(conversation_id)

    # -- annotation ----------------------------------------------------------------------

    @r.post("/conversations/{conversation_id}/turns/{turn_id}/annotate")
    async def annotate(request: Request, conversation_id: str, turn_id: int) -> Response:
        ctx, form = await act(request, conversation_id, "supervisor")
        turns = {x.id: x for x in console.reader.turns(conversation_id, limit=10**6)}
        turn = turns.get(turn_id)
        if turn is None:
            raise NotFound()
        try:
            entities = annotations_mod.parse_entities(
                turn.text_raw or "", str(form.get("entities") or "")
            )
            annotations_mod.annotate(
                console.engine,
                turn_id,
                str(form.get("intent") or "").strip(),
                entities,
                ctx.staff.username,
            )
        except annotations_mod.AnnotationError as exc:
            raise BadRequest(str(exc)) from exc
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            "annotate",
            conversation_id,
            {"turn_id": turn_id, "intent": form.get("intent")},
        )
        return _redirect(f"{PREFIX}/conversations/{conversation_id}#turn-{turn_id}")

    @r.get("/annotations", response_class=HTMLResponse)
    def annotation_queue(request: Request) -> Response:
        ctx = console.ctx(request, "supervisor")
        rows = annotations_mod.queue(console.engine)
        visible = [a for a in rows if console.reader.visible(ctx.scope, a.conversation_id)]
        return console.render(request, "annotations.html", ctx, rows=visible)

    @r.get("/annotations/nlu.yml")
    def annotation_export(request: Request) -> Response:
        ctx = console.ctx(request, "supervisor")
        audit.record(console.engine, f"staff:{ctx.staff.username}", "export", "annotations")
        return Response(
            annotations_mod.export_rasa(console.engine),
            media_type="application/x-yaml; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="nlu.yml"'},
        )

    # -- exports -------------------------------------------------------------------------

    def export_response(
        ctx: Ctx, query: dict[str, str], fmt: str, *, unmask: bool, reason: str = ""
    ) -> Response:
        from console.exports import export_rows

        try:
            filters = Filters.from_query(query)
        except FilterError as exc:
            raise BadRequest(str(exc)) from exc
        if fmt not in ("jsonl", "csv"):
            raise BadRequest("format must be jsonl or csv")
        ids = console.reader.conversation_ids(filters, ctx.scope)
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            "export",
            "conversations",
            {
                "format": fmt,
                "filters": filters.as_query(),
                "unmasked": unmask,
                "reason": reason[:500],
                "conversations": len(ids),
            },
        )
        rows = export_rows(console.engine, ids, unmasked=unmask)
        if fmt == "jsonl":
            body = "".join(json.dumps(x, ensure_ascii=False, default=str) + "\n" for x in rows)
            media = "application/x-ndjson; charset=utf-8"
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["conversation_id"])
            writer.writeheader()
            for x in rows:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False, default=str)
                        if isinstance(v, list | dict)
                        else v
                        for k, v in x.items()
                    }
                )
            body, media = buf.getvalue(), "text/csv; charset=utf-8"
        return Response(
            body,
            media_type=media,
            headers={"content-disposition": f'attachment; filename="conversations.{fmt}"'},
        )

    @r.get("/export")
    def export(request: Request, format: str = "jsonl") -> Response:
        ctx = console.ctx(request, "supervisor")
        return export_response(ctx, dict(request.query_params), format, unmask=False)

    @r.post("/export")
    async def export_unmasked(request: Request) -> Response:
        ctx = console.ctx(request, "supervisor")
        form = await console.form(request, ctx)
        reason = str(form.get("reason") or "").strip()
        if len(reason) < 5:
            raise BadRequest("give a reason (at least 5 characters) to unmask")
        query = {k: str(v) for k, v in form.items() if k not in ("csrf_token", "reason")}
        return export_response(
            ctx, query, str(form.get("format") or "jsonl"), unmask=True, reason=reason
        )

    # -- dashboards ----------------------------------------------------------------------

    @r.get("/dashboard", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        from markupsafe import Markup

        from console import svg
        from console.dashboards import ASSISTANT_CHARTS, CHARTS, assistant_summary, chart_data

        ctx = console.ctx(request, "supervisor")
        summary = assistant_summary(console.engine, console.reader, ctx.scope)
        # The assistant's charts are drawn inline (SVG) from the cached numbers; the
        # billing charts are images loaded on their own (the billing reports are larger).
        inline = {
            # svg.chart escapes every label it writes
            name: Markup(
                svg.chart(
                    chart_data(
                        name, console.engine, console.billing_engine, console.reader, ctx.scope
                    ),
                    title=CHARTS[name][0] if ctx.lang == "en" else CHARTS[name][1],
                )
            )
            for name in ASSISTANT_CHARTS
        }
        return console.render(
            request, "dashboard.html", ctx, charts=CHARTS, summary=summary, inline=inline
        )

    @r.get("/charts/{name}.{ext}")
    def chart(request: Request, name: str, ext: str) -> Response:
        from console.dashboards import CHARTS, chart_data, render_png, to_csv

        ctx = console.ctx(request, "supervisor")
        if name not in CHARTS or ext not in ("png", "csv"):
            raise NotFound()
        data = chart_data(name, console.engine, console.billing_engine, console.reader, ctx.scope)
        if ext == "csv":
            audit.record(console.engine, f"staff:{ctx.staff.username}", "export", f"chart:{name}")
            return Response(
                to_csv(data),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": f'attachment; filename="{name}.csv"'},
            )
        return Response(render_png(name, data, ctx.lang), media_type="image/png")

    # -- risk review (supervisor) ------------------------------------------------------------

    @r.get("/risk", response_class=HTMLResponse)
    def risk_queue(request: Request) -> Response:
        from console.risk_review import held

        ctx = console.ctx(request, "supervisor")
        return console.render(
            request, "risk.html", ctx, rows=held(console.billing_engine, ctx.scope)
        )

    @r.post("/risk/{payment_id}/{decision}")
    async def risk_decide(request: Request, payment_id: str, decision: str) -> Response:
        from console.risk_review import ReviewError, decide

        ctx = console.ctx(request, "supervisor")
        form = await console.form(request, ctx)
        if decision not in ("approve", "decline"):
            raise NotFound()
        reason = str(form.get("reason") or "").strip()
        try:
            result = decide(
                console.billing_engine,
                ctx.scope,
                payment_id,
                approve=decision == "approve",
                staff=f"staff:{ctx.staff.username}",
                reason=reason,
            )
        except ReviewError as exc:
            raise BadRequest(str(exc)) from exc
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            f"payment_{decision}",
            payment_id,
            {"reason": reason[:200], "status": result.get("status")},
        )
        return _redirect(f"{PREFIX}/risk")

    # -- staff accounts (admin) ------------------------------------------------------------

    @r.get("/staff", response_class=HTMLResponse)
    def staff_page(request: Request) -> Response:
        ctx = console.ctx(request, "admin")
        return console.render(
            request, "staff.html", ctx, staff=list_staff(console.engine), error=None
        )

    @r.post("/staff", response_class=HTMLResponse)
    async def staff_create(request: Request) -> Response:
        ctx = console.ctx(request, "admin")
        form = await console.form(request, ctx)
        buildings = [b.strip() for b in str(form.get("buildings") or "").split(",") if b.strip()]
        try:
            created = add_staff(
                console.engine,
                str(form.get("username") or "").strip(),
                str(form.get("role") or ""),
                str(form.get("password") or ""),
                buildings,
            )
        except AccountError as exc:
            return console.render(
                request,
                "staff.html",
                ctx,
                status=400,
                staff=list_staff(console.engine),
                error=str(exc),
            )
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            "staff_add",
            created.username,
            {"role": created.role, "buildings": created.buildings},
        )
        return _redirect(f"{PREFIX}/staff")

    @r.post("/staff/{username}/disabled")
    async def staff_disable(request: Request, username: str) -> Response:
        ctx = console.ctx(request, "admin")
        form = await console.form(request, ctx)
        disabled = str(form.get("disabled") or "") == "yes"
        try:
            set_disabled(console.engine, username, disabled)
        except AccountError as exc:
            raise NotFound() from exc
        audit.record(
            console.engine,
            f"staff:{ctx.staff.username}",
            "staff_disable" if disabled else "staff_enable",
            username,
        )
        return _redirect(f"{PREFIX}/staff")

    @r.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request) -> Response:
        ctx = console.ctx(request, "admin")
        return console.render(request, "audit.html", ctx, rows=audit.entries(console.engine))

    return r


def _set_cookie(
    resp: Response, console: Console, name: str, value: str, *, max_age: int | None = None
) -> None:
    resp.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=console.settings.secure_cookies,
        max_age=max_age,
    )


def _install_handlers(app: FastAPI, console: Console) -> None:
    def page(request: Request, key: str, status: int, message: str | None = None) -> Response:
        return console.render(request, "error.html", None, status=status, key=key, message=message)

    async def login_required(request: Request, exc: Exception) -> Response:
        target = f"{PREFIX}/login?{urlencode({'next': request.url.path})}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method == "GET":
            return _redirect(target)
        return page(request, "session_expired", 401)

    async def forbidden(request: Request, exc: Exception) -> Response:
        return page(request, "forbidden", 403)

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "not_found", 404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return page(request, "error", 400, str(exc))

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(BadRequest, bad_request)


def mount(app: FastAPI, *, database_url: str | None = None, billing_url: str | None = None) -> None:
    """Add the staff console to ``app`` at ``/console/``.

    Args:
        app: The product's FastAPI app.
        database_url: The conversation database (default: the dialogue's).
        billing_url: The billing database (default: ``BILLTALK_DATABASE_URL``).
    """
    from billtalk.db import make_engine
    from billtalk.settings import get_settings
    from console.db import conversation_database_url

    settings = get_settings()
    conv_url = database_url or conversation_database_url()
    bill_url = billing_url or settings.database_url
    engine = make_engine(conv_url)
    billing = None if bill_url == conv_url else make_engine(bill_url)
    console = Console(engine, billing, settings.secret_key, get_console_settings())
    audit.link_chain(engine, billing or engine)
    app.state.console = console
    app.include_router(build_router(console))
    app.mount(
        f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console-static"
    )
    _install_handlers(app, console)
    app.add_middleware(SecurityHeaders)


def create_console_app(database_url: str, billing_url: str | None = None) -> FastAPI:
    """A FastAPI app with only the console (tests, benchmarks); the product mounts it instead."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    mount(app, database_url=database_url, billing_url=billing_url or database_url)
    return app


__all__ = ["create_console_app", "mount"]
