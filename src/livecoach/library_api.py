"""The library's HTTP side (docs/library.md): the coach's sessions by client, a client's trends,
filing a session under a client, and a session's report with the coach's text.

The library and the trends span the logged-in coach's own sessions only (login cookie; 401
without). A session's routes take the session's coach token or its coach's login, as every
session route does (``CoachGuard``: 404, 401, 403). Reading a session's report is written to its
access log, as opening its review is.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import library, report_html, session_report
from .coach_api import HEADERS, ApiError, CoachGuard, bad, error_response, json_response, read_object
from .coach_settings import KIND_ID
from .logins import logged_in_coach
from .store import MAX_SESSION_LABEL, Coach, Store

LIBRARY_BUDGET_S = 0.5
"""How long one answer may spend rebuilding stale figures; the rest are built on the next ask
(after an upgrade a large library has none kept yet)."""
REPORT_TEXT_PATH = r"/api/sessions/[^/]+/report/text"
REPORT_TEXT_MAX_BODY = 128 * 1024
"""The report text's body limit (guards.py): two texts of ``session_report.MAX_TEXT`` characters."""
GZIP_FROM_BYTES = 1024
MAX_TZ = 64
FILE_NAME = re.compile(r"[^A-Za-z0-9]+")


def library_routes(store: Store, web: Path) -> list[Route]:
    """The routes; ``web`` is the pages' folder, whose css/report.css a standalone report inlines."""
    api = _LibraryApi(store, web)
    base = "/api/sessions/{session}"
    return [
        Route("/api/library", api.library, methods=["GET"]),
        Route("/api/clients/{name:path}/trends", api.trends, methods=["GET"]),
        Route(f"{base}/client", api.guarded(api.put_client), methods=["PUT"]),
        Route(f"{base}/report", api.guarded(api.report), methods=["GET"]),
        Route(f"{base}/report/text", api.guarded(api.get_text), methods=["GET"]),
        Route(f"{base}/report/text", api.guarded(api.put_text), methods=["PUT"]),
    ]


def report_css(web: Path) -> str:
    """The report's stylesheet, as a standalone report inlines it."""
    return (web / "css" / "report.css").read_text(encoding="utf-8")


class _LibraryApi(CoachGuard):
    def __init__(self, store: Store, web: Path) -> None:
        super().__init__(store)
        self.web = web

    async def _coach(self, request: Request) -> Coach:
        coach = await logged_in_coach(self.store, request)
        if coach is None:
            raise ApiError(401, "not-logged-in", "log in first: the library is the logged-in coach's")
        request.state.who = f"coach {coach.email}"
        return coach

    # -- the library and the trends ----------------------------------------------------------

    async def library(self, request: Request) -> Response:
        try:
            coach = await self._coach(request)
            query = request.query_params
            client = _client(query.get("client"))
            since = library.parse_time(query["from"], "from") if query.get("from") else None
            until = library.parse_time(query["to"], "to", end=True) if query.get("to") else None
            kind = query.get("tag_kind") or None
            if kind is not None and not KIND_ID.fullmatch(kind):
                raise bad("'tag_kind' is a tag kind's id: 1 to 40 characters of A-Z a-z 0-9 _ -")
            fields = query.get("fields")
            if fields not in (None, "list"):
                raise bad("'fields' is 'list' (what the library page's list shows), or not given (everything)")
        except library.BadQuery as err:
            return error_response(bad(str(err)))
        except ApiError as err:
            return error_response(err)
        return await run_in_threadpool(lambda: _json(request, library.library(
            self.store, coach.id, client, since, until, kind, LIBRARY_BUDGET_S, listed=fields == "list")))

    async def trends(self, request: Request) -> Response:
        try:
            coach = await self._coach(request)
            name = request.path_params["name"]
            if len(name) > MAX_SESSION_LABEL:
                raise bad(f"a client's name has at most {MAX_SESSION_LABEL} characters")
            answer = await run_in_threadpool(library.trends, self.store, coach.id, name, LIBRARY_BUDGET_S)
            if answer is None:
                raise ApiError(404, "unknown-client", "you have no session with this client")
            form = request.query_params.get("format", "json")
            if form not in ("json", "csv"):
                raise bad("'format' is 'json' or 'csv'")
        except ApiError as err:
            return error_response(err)
        if form == "json":
            return await run_in_threadpool(_json, request, answer)
        name = FILE_NAME.sub("-", answer["client"]).strip("-").lower() or "client"
        return Response(library.trends_csv(answer), media_type="text/csv; charset=utf-8", headers=dict(HEADERS) | {
            "Content-Disposition": f"attachment; filename=\"trends-{name}.csv\""})

    # -- a session -----------------------------------------------------------------------------

    async def put_client(self, request: Request, session: str) -> Response:
        """File the session under a client (a name the coach chooses; empty: none)."""
        client = (await read_object(request)).get("client")
        if not isinstance(client, str) or len(client) > MAX_SESSION_LABEL:
            raise bad(f"'client' must be a string of at most {MAX_SESSION_LABEL} characters")
        await run_in_threadpool(self.store.set_client, session, client)
        stored = await run_in_threadpool(self.store.get_session, session)
        return json_response({"session": session, "client": stored.client})

    async def report(self, request: Request, session: str) -> Response:
        """The report as JSON (its model), as a standalone HTML document, or as its article alone
        (what the report page shows), less the parts ``without`` names; ``download=1`` sends the
        document as a file to save."""
        query = request.query_params
        form = query.get("format", "json")
        if form not in ("json", "html", "article"):
            raise bad("'format' is 'json', 'html' or 'article'")
        try:
            without = session_report.parts(query.get("without"))
        except session_report.UnknownPart as err:
            raise bad(str(err)) from None
        tz = _zone(query.get("tz"))
        download = query.get("download") == "1"
        model = await run_in_threadpool(session_report.build_report, self.store, session, without)
        action = "downloaded the report" if download else "opened the report"
        detail = f"without {', '.join(sorted(without))}" if without else ""
        logged = BackgroundTask(self.store.log_access, session, request.state.who, action, detail)
        if form == "json":
            response = await run_in_threadpool(_json, request, model)
            response.background = logged
            return response
        headers = dict(HEADERS)
        if form == "article":
            return Response(report_html.article(model, tz), media_type="text/html; charset=utf-8", headers=headers,
                            background=logged)
        css = await run_in_threadpool(report_css, self.web)
        if download:
            name = FILE_NAME.sub("-", model["session"]["client"] or "session").strip("-").lower() or "session"
            kind = "shared" if without else "full"
            headers["Content-Disposition"] = (
                f"attachment; filename=\"report-{name}-{model['session']['started'][:10]}-{kind}.html\"")
        return Response(report_html.document(model, css, tz), media_type="text/html; charset=utf-8", headers=headers,
                        background=logged)

    async def get_text(self, request: Request, session: str) -> Response:
        return json_response(await run_in_threadpool(self.store.report_text, session))

    async def put_text(self, request: Request, session: str) -> Response:
        try:
            summary, next_steps = session_report.check_text(await read_object(request))
        except ValueError as err:
            raise bad(str(err)) from None
        return json_response(await run_in_threadpool(self.store.set_report_text, session, summary, next_steps))


def _client(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_SESSION_LABEL:
        raise bad(f"'client' has at most {MAX_SESSION_LABEL} characters")
    return value.strip() or None


def _zone(name: str | None) -> ZoneInfo | None:
    """The time zone a report's times are written in (an IANA name; none: UTC)."""
    if not name:
        return ZoneInfo("UTC")
    if len(name) > MAX_TZ:
        raise bad("'tz' is an IANA time zone name, e.g. Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("'tz' is an IANA time zone name, e.g. Europe/Paris") from None


def _json(request: Request, value: Any) -> Response:
    """A JSON answer, gzipped (level 1) for a browser that takes it: a thousand sessions are
    about 550 KB, 85 KB gzipped (290 KB, 40 KB as the library page asks for them). Made in a
    worker thread (tens of ms for a large library), so that the event loop serves the page's
    other requests meanwhile."""
    body = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = dict(HEADERS) | {"Vary": "Accept-Encoding"}
    if len(body) >= GZIP_FROM_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
