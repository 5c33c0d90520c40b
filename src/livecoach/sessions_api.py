"""A coach's sessions as a whole: creating one, deleting one, how long its recordings are kept,
and who has looked at it (docs/security.md)."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import retention
from .coach_api import ApiError, CoachGuard, bad, error_response, json_response, read_object
from .logins import logged_in_coach
from .node_routing import link_base
from .nodes import Node
from .recordings.storage import FolderStorage
from .settings import Settings
from .store import MAX_SESSION_LABEL, Store

MAX_KEEP_DAYS = 36500
LIVE_WITHIN_S = 300.0
"""A call whose participants joined more often than they left, with an event this recent, is
taken to be going on (the front does not see the workers' calls; one that a killed worker left
behind stops counting after this long)."""


def session_routes(store: Store, storage: FolderStorage, settings: Settings, node: Node | None = None) -> list[Route]:
    """``node``: this server as one of several (nodes.py); a new session then gets its owner, and
    its links point there."""
    api = _SessionsApi(store, storage, settings, node)
    base = "/api/sessions/{session}"
    return [
        Route("/api/sessions", api.create, methods=["POST"]),
        Route(base, api.guarded(api.delete), methods=["DELETE"]),
        Route(f"{base}/retention", api.guarded(api.get_retention), methods=["GET"]),
        Route(f"{base}/retention", api.guarded(api.put_retention), methods=["PUT"]),
        Route(f"{base}/access-log", api.guarded(api.get_access_log), methods=["GET"]),
    ]


def _someone_in_the_call(store: Store, session: str) -> bool:
    events = store.events(session, ("joined", "left", "speech", "presence"))
    inside = sum(1 if e["kind"] == "joined" else -1 for e in events if e["kind"] in ("joined", "left"))
    return inside > 0 and bool(events) and events[-1]["wall_time"] > time.time() - LIVE_WITHIN_S


class _SessionsApi(CoachGuard):
    def __init__(self, store: Store, storage: FolderStorage, settings: Settings, node: Node | None = None) -> None:
        super().__init__(store)
        self.storage = storage
        self.settings = settings
        self.node = node

    async def create(self, request: Request) -> Response:
        """A new session of the logged-in coach; the answer holds its two links' tokens, the
        only copies there will ever be (never cached)."""
        try:
            coach = await logged_in_coach(self.store, request)
            if coach is None:
                raise ApiError(401, "not-logged-in", "only a logged-in coach creates sessions")
            body = await read_object(request)
            label, video = body.get("label", ""), body.get("video_recording", True)
            if not isinstance(label, str) or len(label) > MAX_SESSION_LABEL:
                raise bad(f"'label' must be a string of at most {MAX_SESSION_LABEL} characters")
            if not isinstance(video, bool):
                raise bad("'video_recording' must be true or false")
            client = body.get("client")
            if client is not None and (not isinstance(client, str) or len(client) > MAX_SESSION_LABEL):
                raise bad(f"'client' must be a string of at most {MAX_SESSION_LABEL} characters")
        except ApiError as err:
            return error_response(err)
        new = await run_in_threadpool(
            lambda: self.store.create_session(label, video_recording=video, coach_id=coach.id, client=client))
        base = ""
        if self.node is not None:  # the links go to the node that will run the call
            base = link_base(await run_in_threadpool(self.node.assign_new, new.id), request.scope)
        return json_response({"session": new.id, "coach_url": base + new.coach_path(),
                              "client_url": base + new.client_path()}, 201)

    async def delete(self, request: Request, session: str) -> Response:
        """Every row and file of the session; not while its call is being recorded."""
        recording = any(r["state"] == "recording" for r in await run_in_threadpool(self.store.recordings, session))
        if recording or await run_in_threadpool(_someone_in_the_call, self.store, session):
            raise ApiError(409, "call-running", "the call is still going on: end it first")
        await run_in_threadpool(retention.delete_session, self.store, self.storage, session)
        return json_response({"deleted": session})

    async def get_retention(self, request: Request, session: str) -> Response:
        own = await run_in_threadpool(self.store.keep_recordings_days, session)
        return json_response(self._retention(own))

    async def put_retention(self, request: Request, session: str) -> Response:
        """The coach may keep this session's recordings for a shorter time than the
        installation does (null: the installation's time)."""
        days = (await read_object(request)).get("keep_recordings_days")
        limit = self.settings.keep_recordings_days
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_KEEP_DAYS):
            raise bad(f"'keep_recordings_days' is a whole number of days from 0 to {MAX_KEEP_DAYS}, or null")
        if days is not None and limit is not None and days > limit:
            raise bad(f"this server keeps recordings for {limit:g} days at most")
        await run_in_threadpool(self.store.set_keep_recordings_days, session, days)
        return json_response(self._retention(days))

    def _retention(self, own: int | None) -> dict:
        return {"keep_recordings_days": own, "installation_keep_recordings_days": self.settings.keep_recordings_days,
                "installation_keep_sessions_days": self.settings.keep_sessions_days}

    async def get_access_log(self, request: Request, session: str) -> Response:
        return json_response({"entries": await run_in_threadpool(self.store.access_log, session)})
