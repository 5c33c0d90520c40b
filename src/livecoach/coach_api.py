"""The coach's sidebar API: tags, nudge dismissals and the coach's settings (docs/sidebar.md).

Every call needs the session's coach token. Store calls run in a worker thread: the database is
shared with other processes, and a write that waits for theirs must not hold the event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import jsontext
from .coach_settings import KIND_ID, MAX_LABEL, SettingsError, valid_label
from .logins import logged_in_coach
from .store import Store, client_path

MAX_NOTE = 500
MAX_SESSION_TIME = 7 * 24 * 3600
"""Session times beyond a week are a client's bug, not a call."""
TAG_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
NUDGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEADERS = {"Cache-Control": "no-store"}
ORIGINS = ("live", "review")
"""Where a tag was made: during the call, or while replaying it."""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def bad(message: str) -> ApiError:
    return ApiError(400, "bad-message", message)


Handler = Callable[[Request, str], Awaitable[Response]]


def coach_routes(store: Store) -> list[Route]:
    """The sidebar's routes, each behind the coach's token."""
    api = _CoachApi(store)
    base = "/api/sessions/{session}"
    return [
        Route(f"{base}/tags", api.guarded(api.list_tags), methods=["GET"]),
        Route(f"{base}/tags/{{tag}}", api.guarded(api.put_tag), methods=["PUT"]),
        Route(f"{base}/tags/{{tag}}", api.guarded(api.patch_tag), methods=["PATCH"]),
        Route(f"{base}/tags/{{tag}}", api.guarded(api.delete_tag), methods=["DELETE"]),
        Route(f"{base}/nudges", api.guarded(api.list_nudges), methods=["GET"]),
        Route(f"{base}/nudges/{{nudge}}/dismiss", api.guarded(api.dismiss_nudge), methods=["POST"]),
        Route(f"{base}/recording", api.guarded(api.get_recording), methods=["GET"]),
        Route(f"{base}/recording", api.guarded(api.put_recording), methods=["PUT"]),
        Route(f"{base}/invite", api.guarded(api.get_invite), methods=["GET"]),
        Route(f"{base}/invite", api.guarded(api.new_invite), methods=["POST"]),
        Route(f"{base}/invite", api.guarded(api.revoke_invite), methods=["DELETE"]),
        Route(f"{base}/settings", api.guarded(api.get_settings), methods=["GET"]),
        Route(f"{base}/settings", api.guarded(api.put_settings), methods=["PUT"]),
    ]


class CoachGuard:
    """Every coach route's first step: the session's coach token, and errors as documented."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The coach's token first; any ApiError becomes the documented error answer."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request, await self._authorize(request))
            except ApiError as err:
                return error_response(err)

        return endpoint

    async def _authorize(self, request: Request) -> str:
        """The session id, if the request carries that session's coach token, or else the login
        cookie of the coach whose session it is."""
        session = request.path_params["session"]
        if await run_in_threadpool(self.store.get_session, session) is None:
            raise ApiError(404, "unknown-session", "no such session")
        token = bearer_token(request)
        if token is None:
            coach = await logged_in_coach(self.store, request)
            if coach is None:
                raise ApiError(401, "bad-token", "an 'Authorization: Bearer <coach token>' header is needed")
            if await run_in_threadpool(self.store.coach_of, session) != coach.id:
                raise ApiError(403, "forbidden", "this is another coach's session")
            request.state.who = f"coach {coach.email}"
            return session
        role = await run_in_threadpool(self.store.role_for, session, token)
        if role is None:
            raise ApiError(401, "bad-token", "the token is not this session's")
        if role != "coach":
            raise ApiError(403, "forbidden", "only the coach may do this")
        request.state.who = "the coach link"
        return session


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def error_response(err: ApiError) -> Response:
    return json_response({"error": {"code": err.code, "message": str(err)}}, err.status)


def answering_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A request handler whose ``ApiError`` becomes its JSON error answer."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err)

    return endpoint


class _CoachApi(CoachGuard):

    # -- tags ----------------------------------------------------------------------------

    async def list_tags(self, request: Request, session: str) -> Response:
        return json_response({"tags": await run_in_threadpool(self.store.tags, session)})

    async def put_tag(self, request: Request, session: str) -> Response:
        tag_id = _tag_id(request)
        body = await read_object(request)
        fields = _tag_fields(body)
        tag, created = await run_in_threadpool(self.store.put_tag, session, tag_id, **fields)
        return json_response(tag, 201 if created else 200)

    async def patch_tag(self, request: Request, session: str) -> Response:
        tag_id = _tag_id(request)
        changes = _tag_changes(await read_object(request))
        tag = await run_in_threadpool(lambda: self.store.update_tag(session, tag_id, **changes))
        if tag is None:
            raise ApiError(404, "unknown-tag", "no tag with this id in this session")
        return json_response(tag)

    async def delete_tag(self, request: Request, session: str) -> Response:
        return json_response(await run_in_threadpool(self.store.delete_tag, session, _tag_id(request)))

    # -- nudges --------------------------------------------------------------------------

    async def list_nudges(self, request: Request, session: str) -> Response:
        return json_response({"nudges": await run_in_threadpool(self.store.nudges, session)})

    async def dismiss_nudge(self, request: Request, session: str) -> Response:
        nudge_id = request.path_params["nudge"]
        if not NUDGE_ID.fullmatch(nudge_id):
            raise bad("a nudge id is 1 to 64 characters of A-Z a-z 0-9 _ -")
        at = _session_time(await read_object(request), "session_time")
        nudge = await run_in_threadpool(self.store.dismiss_nudge, session, nudge_id, at)
        if nudge is None:
            raise ApiError(404, "unknown-nudge", "no nudge with this id in this session")
        return json_response(nudge)

    # -- what the session records -----------------------------------------------------------

    async def get_recording(self, request: Request, session: str) -> Response:
        stored = await run_in_threadpool(self.store.get_session, session)
        return json_response({"video": stored.video_recording})

    async def put_recording(self, request: Request, session: str) -> Response:
        """Whether the session records video (the browsers' cameras). A participant's notice
        names what is set when they join; a change reaches those who join after it."""
        video = (await read_object(request)).get("video")
        if not isinstance(video, bool):
            raise bad("'video' must be true or false")
        await run_in_threadpool(self.store.set_video_recording, session, video)
        return json_response({"video": video})

    # -- the client's invite ---------------------------------------------------------------

    async def get_invite(self, request: Request, session: str) -> Response:
        """Whether the invite admits the client, and until when (it runs from the call's last
        activity: joining or leaving)."""
        expires = await run_in_threadpool(self.store.invite_expires_at, session)
        return json_response({"active": expires is not None and expires > time.time(),
                              "expires_at": None if expires is None else round(expires, 3)})

    async def new_invite(self, request: Request, session: str) -> Response:
        """A new invite link for the client; the old one stops working."""
        token = await run_in_threadpool(self.store.new_invite, session)
        expires = await run_in_threadpool(self.store.invite_expires_at, session)
        return json_response({"client_url": client_path(session, token), "expires_at": round(expires, 3)}, 201)

    async def revoke_invite(self, request: Request, session: str) -> Response:
        """The client's invite link stops working at once (a client in the call stays until they
        leave; the coach can make a new link)."""
        await run_in_threadpool(self.store.revoke_invite, session)
        return json_response({"active": False, "expires_at": None})

    # -- settings ------------------------------------------------------------------------

    async def get_settings(self, request: Request, session: str) -> Response:
        coach = await run_in_threadpool(self.store.coach_of, session)
        return json_response(await run_in_threadpool(self.store.coach_settings, coach))

    async def put_settings(self, request: Request, session: str) -> Response:
        body = await read_object(request)
        coach = await run_in_threadpool(self.store.coach_of, session)
        try:
            return json_response(await run_in_threadpool(self.store.set_coach_settings, coach, body))
        except SettingsError as err:
            raise bad(str(err)) from None


def json_response(content: Any, status: int = 200) -> Response:
    return JSONResponse(content, status_code=status, headers=HEADERS)


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (guards.py has refused it already if it was too large)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "bad-media-type", "the body must be JSON, sent as 'Content-Type: application/json'")
    try:
        value = jsontext.loads(await request.body())
    except jsontext.BadJson as err:
        raise bad(f"the body must be a JSON object: {err}") from None
    if not isinstance(value, dict):
        raise bad("the body must be a JSON object")
    return value


def _tag_id(request: Request) -> str:
    tag_id = request.path_params["tag"]
    if not TAG_ID.fullmatch(tag_id):
        raise bad("a tag id is 8 to 64 characters of A-Z a-z 0-9 _ -")
    return tag_id


def _tag_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The stored fields of a new tag; other fields of the body are ignored."""
    kind = body.get("kind")
    if not isinstance(kind, str) or not KIND_ID.fullmatch(kind):
        raise bad("'kind' must be 1 to 40 characters of A-Z a-z 0-9 _ -")
    if not valid_label(body.get("label")):
        raise bad(f"'label' must be 1 to {MAX_LABEL} characters")
    clicked = body.get("clicked_at")
    origin = body.get("origin", "live")
    if origin not in ORIGINS:
        raise bad("'origin' is 'live' or 'review'")
    return {
        "origin": origin,
        "kind": kind,
        "label": body["label"],
        "session_time": _session_time(body, "session_time"),
        "clicked_at": None if clicked is None else _session_time(body, "clicked_at"),
        "note": _note(body, required=False),
    }


def _tag_changes(body: dict[str, Any]) -> dict[str, Any]:
    """What a PATCH changes: any of the note, the kind (with its label) and the time."""
    changes: dict[str, Any] = {}
    if "note" in body:
        changes["note"] = _note(body, required=True)
    if "kind" in body or "label" in body:
        kind = body.get("kind")
        if not isinstance(kind, str) or not KIND_ID.fullmatch(kind) or not valid_label(body.get("label")):
            raise bad("'kind' and 'label' change together: a kind id and a label of 1 to "
                      f"{MAX_LABEL} characters")
        changes |= {"kind": kind, "label": body["label"]}
    if "session_time" in body:
        changes["session_time"] = _session_time(body, "session_time")
    if not changes:
        raise bad("a PATCH changes 'note', 'kind' with 'label', or 'session_time'")
    return changes


def _session_time(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SESSION_TIME:
        raise bad(f"'{key}' must be a number of seconds from 0 to {MAX_SESSION_TIME}")  # also NaN and infinities
    return float(value)


def _note(body: dict[str, Any], required: bool) -> str:
    if "note" not in body and not required:
        return ""
    note = body.get("note")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise bad(f"'note' must be a string of at most {MAX_NOTE} characters")
    return note
