"""The review's HTTP side: the replay payload, clips, and the recordings' bytes (docs/review.md).

The payload and clips need the session's coach token like the sidebar's API. Media elements
cannot send that header, so the payload gives them signed, expiring links (signing.py), which
``/media/…`` checks before serving a file's bytes with ranges.
"""

from __future__ import annotations

import gzip
import hashlib
import time

from starlette.background import BackgroundTasks
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import heap
from .coach_api import HEADERS, ApiError, CoachGuard, bad, json_response, read_object
from .media import ranged_response
from .recordings.clips import audio_clip, video_clip
from .recordings.finalise import MediaError
from .recordings.formats import media_type as audio_media_type
from .recordings.storage import NAME, RecordingStorage
from .review_source import load_review
from .signing import Signer
from .store import Store

CLIP_BEFORE_S, CLIP_AFTER_S = 30.0, 15.0
MAX_CLIP_SIDE_S = 300.0
FINISHED = ("finished", "interrupted")
ACCESS_LOG_GAP_S = 600.0


def review_routes(store: Store, storage: RecordingStorage, signer: Signer) -> list[Route]:
    api = _ReviewApi(store, storage, signer)
    base = "/api/sessions/{session}"
    return [
        Route(f"{base}/review", api.guarded(api.review), methods=["GET"]),
        Route(f"{base}/clips", api.guarded(api.clip), methods=["POST"]),
        Route("/media/{session}/{name}", api.media, methods=["GET", "HEAD"]),
    ]


class _ReviewApi(CoachGuard):
    def __init__(self, store: Store, storage: RecordingStorage, signer: Signer) -> None:
        super().__init__(store)
        self.storage = storage
        self.signer = signer
        self._fetched: dict[tuple[str, str], float] = {}

    def _first_in_a_while(self, session: str, name: str) -> bool:
        """Once per file per ACCESS_LOG_GAP_S: a replayed file asks for its start more than once."""
        now = time.monotonic()
        key = (session, name)
        if now - self._fetched.get(key, float("-inf")) < ACCESS_LOG_GAP_S:
            return False
        if len(self._fetched) > 10_000:
            self._fetched.clear()
        self._fetched[key] = now
        return True

    def _link(self, session: str, name: str) -> str:
        return self.signer.sign(f"/media/{session}/{name}")

    async def review(self, request: Request, session: str) -> Response:
        """The payload, gzipped where the browser takes it (a 2-hour call: 250 KB, 60 KB gzipped)."""
        gzipped = "gzip" in request.headers.get("accept-encoding", "")
        body = await run_in_threadpool(self._payload, session, gzipped)
        headers = dict(HEADERS) | {"Vary": "Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        # The access log is written once the answer is out: the page waits for the answer only;
        # then the memory of building an hour's payload (megabytes of a lossy call's gaps) goes back.
        after = BackgroundTasks()
        after.add_task(self.store.log_access, session, request.state.who, "opened the review")
        after.add_task(heap.after_big_job)
        return Response(body, media_type="application/json", headers=headers, background=after)

    def _payload(self, session: str, gzipped: bool) -> bytes:
        """The payload's JSON, gzipped at level 1 if asked: a few ms for 250 KB (level 5 takes
        three times as long for 12% less)."""
        body = load_review(self.store, session, lambda name: self._link(session, name))
        return gzip.compress(body, compresslevel=1) if gzipped else body

    async def clip(self, request: Request, session: str) -> Response:
        """A clip around a tag: both participants' audio, or one participant's video."""
        body = await read_object(request)
        kind = body.get("kind", "audio")
        if kind not in ("audio", "video"):
            raise bad("'kind' is 'audio' or 'video'")
        participant = body.get("participant", "client")
        if participant not in ("coach", "client"):
            raise bad("'participant' is 'coach' or 'client'")
        before = _seconds(body, "before_s", CLIP_BEFORE_S)
        after = _seconds(body, "after_s", CLIP_AFTER_S)
        tag_id = body.get("tag")
        tags = {t["id"]: t for t in await run_in_threadpool(self.store.tags, session)}
        if not isinstance(tag_id, str) or tag_id not in tags:
            raise ApiError(404, "unknown-tag", "no tag with this id in this session")
        at = tags[tag_id]["session_time"]
        start, end = max(0.0, at - before), at + after
        digest = hashlib.sha256(f"{tag_id}/{start:.3f}/{end:.3f}/{kind}/{participant}".encode()).hexdigest()[:12]
        name = f"clip-{kind}-{digest}.webm"
        recordings = await run_in_threadpool(self.store.recordings, session)
        try:
            if kind == "audio":
                await run_in_threadpool(audio_clip, self.storage, session, recordings, start, end, name)
            else:
                row = _video_at(recordings, participant, at)
                start = await run_in_threadpool(video_clip, self.storage, session, row, start, end, name)
        except MediaError as err:
            raise ApiError(409, "no-recording", str(err)) from None
        await run_in_threadpool(self.store.log_access, session, request.state.who, f"made a {kind} clip", name)
        label = "".join(c if c.isalnum() else "-" for c in tags[tag_id]["label"]).strip("-").lower() or "tag"
        who = "" if kind == "audio" else f"-{participant}"
        return json_response({
            "url": self._link(session, name),
            "filename": f"{label}{who}-{int(at // 60)}m{int(at % 60):02d}s.webm",
            "media_type": f"{kind}/webm", "start_s": round(start, 3), "end_s": round(end, 3)}, 201)

    async def media(self, request: Request) -> Response:
        session, name = request.path_params["session"], request.path_params["name"]
        query = request.query_params
        if not self.signer.valid(request.url.path, query.get("e", ""), query.get("k", "")):
            return JSONResponse({"error": {"code": "forbidden", "message": "this link is not valid (any more)"}},
                                status_code=403, headers={"Cache-Control": "no-store"})
        # In a thread: with recordings in an object store each is a request to it.
        if not NAME.fullmatch(name) or not await run_in_threadpool(self.storage.exists, session, name):
            return JSONResponse({"error": {"code": "not-found", "message": "no such file"}}, status_code=404)
        size = await run_in_threadpool(self.storage.size, session, name)
        if _from_the_start(request.headers.get("range")) and self._first_in_a_while(session, name):
            await run_in_threadpool(self.store.log_access, session, "a signed link", "fetched a file", name)
        video = name.startswith(("video-", "clip-video-"))
        media_type = "video/webm" if video else audio_media_type(name)
        return ranged_response(size, media_type, request.headers.get("range"),
                               lambda a, b: self.storage.read_range(session, name, a, b),
                               {"Cache-Control": "private, max-age=3600"})


def _from_the_start(range_header: str | None) -> bool:
    """A request for the whole file or from its first byte: a download or the start of playing,
    not one of the many range requests of seeking."""
    return range_header is None or range_header.replace(" ", "").startswith("bytes=0-")


def _video_at(recordings: list[dict], participant: str, at: float) -> dict:
    """The participant's finished video recording that holds session time ``at``."""
    for row in recordings:
        if (row["kind"] == "video" and row["participant"] == participant and row["state"] in FINISHED
                and row["start_s"] <= at <= row["start_s"] + (row["duration_s"] or 0)):
            return row
    raise MediaError(f"no finished video of the {participant} at that moment")


def _seconds(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_CLIP_SIDE_S:
        raise bad(f"'{key}' must be a number of seconds from 0 to {MAX_CLIP_SIDE_S:g}")
    return float(value)
