"""The browsers' video uploads: ``PUT /api/sessions/<session>/uploads/<recording>/<n>``
(docs/review.md). Either participant uploads their own camera and microphone, with their own
token, and only if they agreed to video recording."""

from __future__ import annotations

import math
import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import consent
from .coach_api import MAX_SESSION_TIME, ApiError, bearer_token, error_response, json_response
from .recordings.storage import FolderStorage
from .recordings.uploads import MAX_CHUNK, MAX_CHUNKS, UploadError, Uploads
from .store import Store

RECORDING_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
CHUNK_NUMBER = re.compile(r"[0-9]{1,9}")
"""ASCII digits only: ``str.isdigit`` also takes "²" (which ``int`` refuses) and ``int`` refuses
more than 4300 digits, each a 500 before."""
UPLOAD_PATH = r"/api/sessions/[^/]+/uploads/[^/]+/[^/]+"
"""The chunks' route, as a pattern: its bodies may be up to MAX_CHUNK (guards.py)."""


def upload_routes(store: Store, storage: FolderStorage) -> list[Route]:
    uploads = Uploads(store, storage)

    async def put_chunk(request: Request) -> Response:
        try:
            return await _put(request, store, uploads)
        except ApiError as err:
            return error_response(err)
        except UploadError as err:
            body = {"error": {"code": err.code, "message": err.message}}
            if err.expected is not None:
                body["error"]["expected"] = err.expected
            return json_response(body, err.status)

    return [Route("/api/sessions/{session}/uploads/{recording}/{number}", put_chunk, methods=["PUT"])]


async def _put(request: Request, store: Store, uploads: Uploads) -> Response:
    session = request.path_params["session"]
    stored = await run_in_threadpool(store.get_session, session)
    if stored is None:
        raise ApiError(404, "unknown-session", "no such session")
    token = bearer_token(request)
    role = await run_in_threadpool(store.role_for, session, token) if token else None
    if role is None:
        raise ApiError(401, "bad-token", "an 'Authorization: Bearer <token>' of this session is needed")
    scopes = await run_in_threadpool(store.consent_scopes, session, role)
    if consent.VIDEO not in scopes or not stored.video_recording:
        raise ApiError(403, "no-consent", "video is recorded only with the participant's agreement to it")
    recording, number = request.path_params["recording"], request.path_params["number"]
    if not RECORDING_ID.fullmatch(recording):
        raise ApiError(400, "bad-message", "a recording id is 8 to 64 characters of A-Z a-z 0-9 _ -")
    if not CHUNK_NUMBER.fullmatch(number) or int(number) >= MAX_CHUNKS:
        raise ApiError(400, "bad-message", f"a chunk number is 0 to {MAX_CHUNKS - 1}")
    sha = request.headers.get("x-content-sha256", "")
    if not SHA256.fullmatch(sha):
        raise ApiError(400, "bad-message", "an 'X-Content-SHA256' header with the chunk's SHA-256 (hex) is needed")
    start = _start(request.query_params.get("start"))
    data = await _body(request)
    result = await run_in_threadpool(uploads.put, session, role, recording, int(number), data, sha, start,
                                     request.query_params.get("last") == "1")
    return json_response(result, 201 if result["stored"] else 200)


def _start(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_SESSION_TIME:
        raise ApiError(400, "bad-message", f"'start' must be a number of seconds from 0 to {MAX_SESSION_TIME}")
    return value


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_CHUNK:
        raise ApiError(413, "too-big", f"a chunk is at most {MAX_CHUNK} bytes")
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > MAX_CHUNK:
                raise ApiError(413, "too-big", f"a chunk is at most {MAX_CHUNK} bytes")
    except ClientDisconnect:
        raise ApiError(400, "damaged", "the upload was cut off") from None
    if not body:
        raise ApiError(400, "bad-message", "an empty chunk")
    return bytes(body)


