"""A session's exports over HTTP (docs/exports.md): ``GET /api/sessions/<session>/export?format=…``.

Like the review, only the session's coach (their token, or their login) may export it, and each
export is noted in the session's access log.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import exports
from .coach_api import HEADERS, ApiError, CoachGuard, bad
from .store import Store


def export_routes(store: Store) -> list[Route]:
    api = _ExportApi(store)
    return [Route("/api/sessions/{session}/export", api.guarded(api.export), methods=["GET"])]


class _ExportApi(CoachGuard):
    async def export(self, request: Request, session: str) -> Response:
        """The export as a download (``Content-Disposition: attachment``), never cached."""
        fmt = request.query_params.get("format", "json")
        table = request.query_params.get("table") or None
        if fmt not in exports.FORMATS:
            raise bad(f"'format' is one of {', '.join(exports.FORMATS)}")
        try:
            made = await run_in_threadpool(self._make, session, fmt, table)
        except exports.ExportError as err:
            raise bad(str(err)) from None
        headers = dict(HEADERS) | {"Content-Disposition": f'attachment; filename="{made.filename}"',
                                   "X-Content-Type-Options": "nosniff"}
        detail = fmt + (f" ({table})" if table else "")
        logged = BackgroundTask(self.store.log_access, session, request.state.who, "exported the session", detail)
        return Response(made.body, media_type=made.media_type, headers=headers, background=logged)

    def _make(self, session: str, fmt: str, table: str | None) -> exports.Export:
        data = exports.load(self.store, session)
        if data is None:  # deleted since the guard looked
            raise ApiError(404, "unknown-session", "no such session")
        return exports.export(data, fmt, table)
