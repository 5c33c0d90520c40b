"""Importing a recorded call from the coach's browser (docs/exports.md).

    POST   /api/imports                     what is coming: the label, the client, the files' names and sizes
    PUT    /api/imports/<id>/files/<part>   one file's bytes ("coach", "client" or "stereo")
    GET    /api/imports/<id>                where the import is, with its progress
    DELETE /api/imports/<id>                cancel it: nothing of it is kept

Only a logged-in coach imports, and sees only their own imports. Files can be hundreds of MB: a
file's bytes go to disk as they arrive (a staging folder of the recordings' storage), never into
memory, and ``guards.py`` lets this route's bodies be as large as ``MAX_IMPORT_FILE``. Once every
file is in, the import runs in a process of its own (``python -m livecoach.importing``: the same
code as ``livecoach import``), so its analysis and encoding never hold up the server's event loop;
one import runs at a time, others wait their turn. Its progress comes back line by line.

Jobs live in this process's memory: a server that stops loses its imports in progress (their
staging folders are removed the next time someone imports), never a half-stored session. When
the server is one of several nodes (nodes.py), the import's URLs in the answer to the POST carry
this node's prefix behind the proxy (``/n/<node>/api/imports/<id>…``: node_routing.py), so that
its files and questions reach the process that holds the job; and its upload folder is named
after the node (recordings/storage.py, ``staging_name``), so that each node's clean-up removes
only the folders it made, never another node's import in progress in the shared storage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .coach_api import ApiError, answering_errors, bad, json_response, read_object
from .logins import logged_in_coach
from .node_routing import link_base, proxied
from .recordings.storage import RecordingStorage, made_by
from .settings import Settings
from .store import MAX_SESSION_LABEL, Coach, Store

log = logging.getLogger(__name__)

MAX_IMPORT_FILE = 4 * 1024**3
"""The largest file an import takes: 4 GiB (two hours of 48 kHz stereo WAV is 1.4 GB)."""
IMPORT_FILE_PATH = r"/api/imports/[^/]+/files/[^/]+"
"""The files' route, as a pattern: its bodies may be up to MAX_IMPORT_FILE (guards.py)."""
DISK_MARGIN = 256 * 1024**2
"""Free space an import must leave on the recordings' disk beyond its files."""
WRITE_BLOCK = 1024**2
"""Bytes gathered before each write to disk (in a worker thread)."""
RUNNING_AT_ONCE = 1
"""Imports analysed at the same time: each takes a core."""
MAX_OPEN_PER_COACH = 3
"""Imports a coach may have that are not finished yet."""
KEEP_FINISHED_S = 3600.0
"""How long a finished import's answer stays to be read."""
STALE_UPLOAD_S = 3600.0
"""An upload that has not moved for this long is given up, and its files removed."""
STOP_WAIT_S = 10.0
LAYOUTS = {"tracks": ("coach", "client"), "stereo": ("stereo",)}
UPLOADING, QUEUED, ANALYSING, DONE, FAILED, CANCELLED = "uploading", "queued", "analysing", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class Job:
    id: str
    coach: Coach
    label: str
    client: str | None
    layout: str
    files: dict[str, dict[str, Any]]  # part: {"name", "size"}
    recorded_at: float | None
    upload_folder: str
    received: dict[str, int] = field(default_factory=dict)
    state: str = UPLOADING
    progress: float | None = 0.0
    session: str | None = None
    review: str | None = None
    error: str | None = None
    touched: float = field(default_factory=time.monotonic)
    import_folder: str | None = None  # the import process's staging folder, once it said it
    process: asyncio.subprocess.Process | None = None
    writing: set[str] = field(default_factory=set)

    def status(self) -> dict[str, Any]:
        return {
            "import": self.id, "state": self.state, "layout": self.layout, "label": self.label,
            "files": {part: {"name": f["name"], "size": f["size"], "received": self.received.get(part, 0)}
                      for part, f in self.files.items()},
            "uploaded": sum(self.received.values()), "total": sum(f["size"] for f in self.files.values()),
            "progress": self.progress, "session": self.session, "review": self.review, "error": self.error,
        }


def import_routes(store: Store, storage: RecordingStorage, settings: Settings) -> list[Route]:
    imports = Imports(store, storage, settings)
    return [
        Route("/api/imports", imports.wrap(imports.create), methods=["POST"]),
        Route("/api/imports/{job}", imports.wrap(imports.get), methods=["GET"]),
        Route("/api/imports/{job}", imports.wrap(imports.cancel), methods=["DELETE"]),
        Route("/api/imports/{job}/files/{part}", imports.wrap(imports.put_file), methods=["PUT"]),
    ]


class Imports:
    """The imports of this server process."""

    def __init__(self, store: Store, storage: RecordingStorage, settings: Settings) -> None:
        self.store, self.storage, self.settings = store, storage, settings
        self.node_id: str | None = settings.cluster_node_id
        """This node's id, in its upload folders' names (None: the server is no node)."""
        self.jobs: dict[str, Job] = {}
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task] = set()

    wrap = staticmethod(answering_errors)

    async def _coach(self, request: Request) -> Coach:
        coach = await logged_in_coach(self.store, request)
        if coach is None:
            raise ApiError(401, "not-logged-in", "only a logged-in coach imports calls")
        return coach

    async def _job(self, request: Request) -> Job:
        coach = await self._coach(request)
        job = self.jobs.get(request.path_params["job"])
        if job is None or job.coach.id != coach.id:  # another coach's import is not there for them
            raise ApiError(404, "unknown-import", "no such import (finished imports are kept for an hour)")
        return job

    # -- the routes ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        coach = await self._coach(request)
        body = await read_object(request)
        label, client, layout = body.get("label"), body.get("client"), body.get("layout")
        if not isinstance(label, str) or len(label) > MAX_SESSION_LABEL:
            raise bad(f"'label' must be a string of at most {MAX_SESSION_LABEL} characters")
        if client is not None and (not isinstance(client, str) or len(client) > MAX_SESSION_LABEL):
            raise bad(f"'client' must be a string of at most {MAX_SESSION_LABEL} characters")
        if layout not in LAYOUTS:
            raise bad("'layout' is 'tracks' (a file for the coach and one for the client) or 'stereo'")
        files = _files(body.get("files"), LAYOUTS[layout])
        recorded_at = body.get("recorded_at")
        if recorded_at is not None and (isinstance(recorded_at, bool) or not isinstance(recorded_at, (int, float))
                                        or not math.isfinite(recorded_at) or recorded_at < 0):
            raise bad("'recorded_at' is a time in seconds since 1970, or null")
        await self._forget_old()
        if sum(1 for j in self.jobs.values() if j.coach.id == coach.id and j.state not in FINISHED) >= MAX_OPEN_PER_COACH:
            raise ApiError(429, "too-many-imports", f"at most {MAX_OPEN_PER_COACH} imports at a time: wait for one to finish")
        needed = sum(f["size"] for f in files.values()) + DISK_MARGIN
        if await run_in_threadpool(self.storage.free_bytes) < needed:
            raise ApiError(507, "no-space", "the server has not enough free disk space for these files")
        folder = await run_in_threadpool(self.storage.new_staging, "upload", self.node_id)
        job = Job(secrets.token_urlsafe(12), coach, label, client, layout, files,
                  None if recorded_at is None else float(recorded_at), folder)
        self.jobs[job.id] = job
        url = f"{_node_base(request)}/api/imports/{job.id}"
        answer = job.status() | {"url": url, "upload": {part: f"{url}/files/{part}" for part in files}}
        return json_response(answer, 201)

    async def get(self, request: Request) -> Response:
        return json_response((await self._job(request)).status())

    async def cancel(self, request: Request) -> Response:
        job = await self._job(request)
        if job.state == DONE:
            raise ApiError(409, "imported", "this call is imported already: delete its session instead")
        if job.state not in FINISHED:
            job.state, job.error = CANCELLED, "cancelled"
            await self._stop(job)
            await self._clean(job, imported=False)
        return json_response(job.status())

    async def put_file(self, request: Request) -> Response:
        job = await self._job(request)
        part = request.path_params["part"]
        if part not in job.files:
            raise ApiError(404, "unknown-file", f"this import's files are {', '.join(job.files)}")
        if job.state != UPLOADING or part in job.writing or job.received.get(part) == job.files[part]["size"]:
            raise ApiError(409, "not-uploading", f"this file is not awaited now (the import is {job.state})")
        size = job.files[part]["size"]
        job.writing.add(part)
        try:
            length = request.headers.get("content-length", "")
            if not (length.isascii() and length.isdigit()) or int(length) != size:
                raise bad(f"the body must be the whole file: 'Content-Length: {size}'")
            await self._receive(request, job, part, size)
        except ApiError as err:  # an upload that went wrong ends the import: the coach starts again
            await self._fail(job, str(err))
            raise
        finally:
            job.writing.discard(part)
        if job.state == UPLOADING and all(job.received.get(p) == f["size"] for p, f in job.files.items()):
            job.state, job.progress = QUEUED, 0.0
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return json_response(job.status())

    # -- receiving a file --------------------------------------------------------------------

    async def _receive(self, request: Request, job: Job, part: str, size: int) -> None:
        """Write the body to the upload folder as it arrives, a block at a time in a worker thread."""
        try:
            out: BinaryIO = await run_in_threadpool(self.storage.create, job.upload_folder, part)
        except OSError as err:
            raise ApiError(507, "no-space", f"the server could not store the file: {err.strerror}") from None
        job.received[part] = 0
        block = bytearray()
        try:
            async for chunk in request.stream():
                if job.state != UPLOADING:
                    raise ApiError(409, "not-uploading", f"the import is {job.state}")
                block += chunk
                if len(block) >= WRITE_BLOCK:
                    await self._write(out, job, part, bytes(block))
                    block.clear()
            if block:
                await self._write(out, job, part, bytes(block))
        except ClientDisconnect:
            raise ApiError(400, "damaged", "the upload was cut off") from None
        finally:
            await run_in_threadpool(out.close)
        if job.received[part] != size:
            raise ApiError(400, "damaged", "the upload was cut off")

    async def _write(self, out: BinaryIO, job: Job, part: str, data: bytes) -> None:
        if job.received[part] + len(data) > job.files[part]["size"]:
            raise ApiError(413, "too-big", "the body is larger than its Content-Length")
        try:
            await run_in_threadpool(_write_all, out, data)
        except OSError as err:
            raise ApiError(507, "no-space", f"the server could not store the file: {err.strerror}") from None
        job.received[part] += len(data)
        job.touched = time.monotonic()

    # -- running the import ----------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(RUNNING_AT_ONCE)
        outcome: dict[str, Any] = {"state": FAILED, "error": "the import failed on the server (its log says why)"}
        try:
            async with self._slots:
                if job.state != QUEUED:
                    return
                job.state = ANALYSING
                outcome = await self._analyse(job)
        except Exception:
            log.exception("import %s failed", job.id)
        finally:
            # The files go before the answer says it is over. A cancel that came too late (the
            # session was stored as it arrived) leaves the import done.
            if job.state == ANALYSING or (job.state == CANCELLED and outcome["state"] == DONE):
                await self._clean(job, outcome["state"] == DONE)
                for key, value in outcome.items():
                    setattr(job, key, value)
            job.touched = time.monotonic()

    async def _analyse(self, job: Job) -> dict[str, Any]:
        """Run the import process; what the job is once it ended."""
        spec = {
            "data": str(self.settings.data),
            "database": self.settings.database_url,
            "recordings": self.settings.recordings_url,
            "files": {part: str(await run_in_threadpool(self.storage.path, job.upload_folder, part))
                      for part in job.files},
            "names": {part: f["name"] for part, f in job.files.items()},
            "label": job.label, "client": job.client, "coach_id": job.coach.id, "created_at": job.recorded_at,
        }
        job.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "livecoach.importing",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        job.process.stdin.write(json.dumps(spec).encode())
        await job.process.stdin.drain()
        job.process.stdin.close()
        result: dict[str, Any] = {}
        async for raw in job.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if "staging" in line:
                job.import_folder = line["staging"]
            elif "progress" in line:
                job.progress = line["progress"]
                job.touched = time.monotonic()
            else:
                result = line
        await job.process.wait()
        job.process = None
        if "session" not in result:
            return {"state": FAILED, "error": result.get("error") or "the import stopped on the server (its log says why)"}
        names = ", ".join(f["name"] for f in job.files.values())
        await run_in_threadpool(self.store.log_access, result["session"], f"coach {job.coach.email}",
                                "imported the call", names)
        return {"state": DONE, "progress": 1.0, "session": result["session"], "review": result["review"]}

    async def _stop(self, job: Job) -> None:
        """End a running import process: asked first (it cleans up), killed if it does not stop."""
        process = job.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    async def _fail(self, job: Job, message: str) -> None:
        if job.state not in FINISHED:
            await self._clean(job, imported=False)
            job.state, job.error = FAILED, message

    async def _clean(self, job: Job, imported: bool) -> None:
        """The uploaded files go once the import is over; the import's own staging folder too if it
        did not become a session (its process was killed before it could remove it)."""
        await run_in_threadpool(self.storage.delete_session, job.upload_folder)
        if job.import_folder and not imported:
            await run_in_threadpool(self.storage.delete_session, job.import_folder)

    async def _forget_old(self) -> None:
        """Finished imports kept past their time, uploads that stopped moving, and upload folders
        no import here knows of (left by a server that stopped): only those this server could
        have made (named after this node, or after none when it is no node), never another
        node's in the storage they share."""
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.state == UPLOADING and not job.writing and now - job.touched > STALE_UPLOAD_S:
                await self._fail(job, "the upload stopped")
            if job.state in FINISHED and now - job.touched > KEEP_FINISHED_S:
                del self.jobs[job.id]
        known = {job.upload_folder for job in self.jobs.values()}
        wall = time.time()
        for name, changed in await run_in_threadpool(self.storage.staging):
            if made_by(name, "upload", self.node_id) and name not in known and wall - changed > STALE_UPLOAD_S:
                await run_in_threadpool(self.storage.delete_session, name)


def _node_base(request: Request) -> str:
    """What goes before an import's paths to reach this process again: ``/n/<node>`` when the
    server is a node reached through the proxy (which balances other requests over every node,
    and the job lives here only), else nothing (one server, or a node reached at its own address)."""
    node = getattr(request.app.state, "node", None)
    return link_base(node.row(), request.scope) if node is not None and proxied(request.scope) else ""


def _write_all(out: BinaryIO, data: bytes) -> None:
    """A raw file may take part of a write: the rest goes after it."""
    view = memoryview(data)
    while view:
        view = view[out.write(view):]


def _files(value: Any, parts: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The announced files: for each part its name (as the coach knows it) and size in bytes."""
    if not isinstance(value, dict) or set(value) != set(parts):
        raise bad(f"'files' names exactly {' and '.join(repr(p) for p in parts)}")
    out = {}
    for part in parts:
        f = value[part]
        name, size = (f.get("name"), f.get("size")) if isinstance(f, dict) else (None, None)
        if not isinstance(name, str) or not 0 < len(name) <= 255 or any(c in name for c in "/\\\0\n\r"):
            raise bad(f"'files.{part}.name' is the file's name (1 to 255 characters, no path)")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_IMPORT_FILE:
            raise bad(f"'files.{part}.size' is its size in bytes, from 1 to {MAX_IMPORT_FILE} "
                      "(an empty file is not a recording)")
        out[part] = {"name": name, "size": size}
    return out
