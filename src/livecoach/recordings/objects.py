"""Recordings in an S3-compatible object store (``--recordings s3://BUCKET?endpoint=URL``), with
every method of storage.FolderStorage, through boto3 (the ``s3`` extra).

**Layout.** A session's file ``name`` is a run of segment objects
``<prefix><session>/<name>/<offset>``, ``offset`` the position of the segment's first byte in
the file, zero-padded to 16 digits so that the bucket lists them in the file's order. The file's
bytes are its segments end to end: a segment wholly inside the ones before it (left by a merge
cut short) is passed over, and the file ends at a missing stretch (left by a writer killed while
its segments were on their way). An empty file is one empty object at offset 0.

**Writing.** S3 parts must be at least 5 MiB, which a call's Opus audio (4 kB/s) takes twenty
minutes to fill, and an object cannot be appended to. So a file open for writing (``create``,
``append``) is put as new segments: one whenever ``SEGMENT_BYTES`` are waiting, or the oldest
waiting byte is ``SEGMENT_SECONDS`` old (checked at each write and each ``flush``), and at
``close``. Segments go up in background threads; a failed put is raised by the next write, flush
or close, as OSError, as a full disk is. ``create`` returns at once: the file's old segments are
deleted in the background too, when its first segment goes up and before it (or at close, an
empty first object put if it stayed empty).
So the event loop that writes a call's pages never waits for the network: there a writer queues
its segments, and once more than ``PENDING_BYTES`` wait to go up (the store is down, or slower
than the call) its writes fail, as OSError, and the recording stops as on a full disk while the
call goes on. Written in a worker thread (an import's files), a write waits for the store instead
once ``PENDING_SEGMENTS`` segments are on their way. ``close`` waits for every segment: call it
in a worker thread. A process killed mid-call keeps every segment put before: at most the last
``SEGMENT_SECONDS`` are lost (of a file created with ``may_lose_s``, up to that long: a level
strip, which goes up at its close and is made again from the audio after a kill), and the file
read back is the intact run before them. A writer that put several segments but at most
``MERGE_BYTES`` in all puts them again as one at ``close`` and deletes the rest, so the review
reads it in one request. Seeking back to rewrite bytes already put (a WAV header's lengths)
rewrites their segments.

**Local files.** PyAV opens files itself: ``path`` downloads the file into the spool folder (a
cache, reused while the file's segments are unchanged), and a file PyAV writes goes to the spool
at ``writer_path`` and up to the bucket at ``seal``. ``clean_up`` (run hourly by the server and
by ``livecoach purge``) removes spool files unused for an hour and aborts multipart uploads begun
more than an hour ago (nothing here starts one; another client of the bucket may have, and they
are billed until aborted).

Credentials and the region come from boto3's usual places: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (or ``?region=``), ~/.aws, an instance role.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from .storage import COPY_BLOCK, NAME, SESSION, STAGING, StorageError, staging_name

SEGMENT_BYTES = 8 * 1024 * 1024
"""A writer puts a segment once this much is waiting (an import's upload, a sealed file)."""
SEGMENT_SECONDS = 10.0
"""... or once its oldest waiting byte is this old (a call's growing recording). Each put costs
the node about 1.5 ms of CPU in botocore, the store about as much, and the bucket a request: at
5 s the puts were about a third of what a cluster costs a call more than a single server
(scripts/bench_cluster.py). At 10 s a call's two tracks cost the writing process 0.13 s of CPU
in two minutes instead of 0.18-0.23 s (SeaweedFS on loopback, 2026-12-01), for at most 10 s of
audio lost when a node is killed instead of 5."""
MERGE_BYTES = 1024 * 1024
"""A writer that put several segments holding at most this much in all merges them at close."""
PENDING_SEGMENTS = 4
"""Segments of one writer on their way at once; more wait in its queue (written in a worker
thread, a write waits instead once this many are queued or on their way)."""
PENDING_BYTES = 4 * 1024 * 1024
"""Bytes of one writer's segments waiting to go up, at most, when it is written on an event loop
(a call's recording, 4 kB/s: a quarter of an hour of it): past that its writes fail (OSError)
rather than wait for the store."""
FETCH_BYTES = 1024 * 1024
"""Reads are ranged GETs of at most this much, ``FETCH_AHEAD`` of them on their way at once."""
FETCH_AHEAD = 4
LEFT_BEHIND_S = 3600.0
"""``clean_up`` removes spool files unused and multipart uploads begun this long ago."""
OFFSET_DIGITS = 16
DELETE_BATCH = 1000  # S3's most keys in one DeleteObjects
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
PREFIX = re.compile(r"([A-Za-z0-9._-]+/)*")
SPOOL_FOLDER = "recordings-spool"
"""The spool, in the data folder: files PyAV reads or writes, on their way from or to the bucket."""


class ObjectStoreError(StorageError, OSError):
    """The object store refused or could not be reached (after boto3's retries). An OSError too,
    so every caller that handles a failed disk write handles it the same way."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)

    def __str__(self) -> str:
        return self.strerror


class MissingObject(StorageError, FileNotFoundError):
    """No such file in the bucket (a FileNotFoundError too, as the folder's missing file is)."""


@dataclass(frozen=True)
class Location:
    """Where ``s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]`` points."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None


def parse_location(spec: str) -> Location:
    """``s3://BUCKET[/PREFIX][?endpoint=URL][&region=NAME]`` (ValueError if it is not one)."""
    parts = urlsplit(spec)
    if parts.scheme != "s3" or not BUCKET.fullmatch(parts.netloc or ""):
        raise ValueError(f"not an s3://BUCKET location with a valid bucket name: {spec[:200]!r}")
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if not PREFIX.fullmatch(prefix) or "/../" in f"/{prefix}" or "/./" in f"/{prefix}":
        raise ValueError(f"the prefix of {spec[:200]!r} may hold letters, digits, '.', '_', '-' and '/'")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise ValueError(f"{spec[:200]!r}: unknown option {sorted(unknown)[0]!r} (endpoint and region are known)")
    endpoint = query.get("endpoint", [None])[-1] or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"{spec[:200]!r}: endpoint is an http:// or https:// URL")
    return Location(parts.netloc, prefix, endpoint, query.get("region", [None])[-1] or None)


@dataclass(frozen=True)
class _Segment:
    key: str
    offset: int
    size: int
    etag: str
    modified: float


@dataclass(frozen=True)
class _Piece:
    """The part of a segment that is the file's bytes ``start`` to ``start + length``."""

    segment: _Segment
    skip: int  # bytes at the segment's start that are not part of the file (covered by earlier ones)
    start: int
    length: int


def _plan(segments: list[_Segment]) -> tuple[list[_Piece], list[_Segment]]:
    """The file's bytes as pieces of its segments (listed in offset order), and the stray
    segments, which hold none of them: covered by the ones before (a merge cut short), or after a
    missing stretch (a writer killed while its segments were on their way). The segment at
    offset 0 is never stray: empty, it is an empty file."""
    pieces: list[_Piece] = []
    stray: list[_Segment] = []
    end = 0
    for seg in segments:
        if seg.offset == 0:
            if seg.size:
                pieces.append(_Piece(seg, 0, 0, seg.size))
                end = seg.size
        elif seg.offset > end or seg.offset + seg.size <= end:
            stray.append(seg)
        else:
            pieces.append(_Piece(seg, end - seg.offset, end, seg.offset + seg.size - end))
            end = seg.offset + seg.size
    return pieces, stray


def _size(pieces: list[_Piece]) -> int:
    return pieces[-1].start + pieces[-1].length if pieces else 0


class ObjectStorage:
    """Recordings in an S3-compatible bucket, with FolderStorage's methods (module doc)."""

    def __init__(self, location: Location | str, spool: str | os.PathLike, *, client=None,
                 segment_bytes: int = SEGMENT_BYTES, segment_seconds: float = SEGMENT_SECONDS,
                 merge_bytes: int = MERGE_BYTES, pending_bytes: int = PENDING_BYTES) -> None:
        self.location = parse_location(location) if isinstance(location, str) else location
        self.bucket, self.prefix = self.location.bucket, self.location.prefix
        self.spool = Path(spool)
        self.segment_bytes, self.segment_seconds, self.merge_bytes = segment_bytes, segment_seconds, merge_bytes
        self.pending_bytes = pending_bytes
        self.client = client if client is not None else _client(self.location)
        self._uploads = ThreadPoolExecutor(8, thread_name_prefix="s3-put")
        self._downloads = ThreadPoolExecutor(8, thread_name_prefix="s3-get")
        self._cache_lock = threading.Lock()
        self._cached: dict[Path, tuple] = {}  # a downloaded file: the segments it was made of

    def __repr__(self) -> str:
        return f"ObjectStorage(s3://{self.bucket}/{self.prefix})"

    # -- names and keys ----------------------------------------------------------------------

    def _folder(self, session: str) -> str:
        if not SESSION.fullmatch(session):
            raise ValueError(f"not a session id: {session[:80]!r}")
        return f"{self.prefix}{session}/"

    def _file(self, session: str, name: str) -> str:
        if not NAME.fullmatch(name):
            raise ValueError(f"not a recording file name: {name[:100]!r}")
        return f"{self._folder(session)}{name}/"

    @staticmethod
    def _key(file: str, offset: int) -> str:
        return f"{file}{offset:0{OFFSET_DIGITS}d}"

    # -- requests ------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable, **kwargs):
        """A request to the bucket; its failures as MissingObject or ObjectStoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise MissingObject(f"{what} is missing") from None
            raise ObjectStoreError(f"the object store refused ({what}): {err}") from None
        except BotoCoreError as err:
            raise ObjectStoreError(f"the object store cannot be reached ({what}): {err}") from None

    def _list(self, prefix: str) -> Iterator[dict]:
        """Every page of the listing of ``prefix``."""
        token = None
        while True:
            kwargs = {"Prefix": prefix} | ({"ContinuationToken": token} if token else {})
            page = self._call(prefix, self.client.list_objects_v2, **kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _segments(self, session: str, name: str) -> list[_Segment]:
        file = self._file(session, name)
        out = []
        for page in self._list(file):
            for obj in page.get("Contents", []):
                tail = obj["Key"][len(file):]
                if len(tail) == OFFSET_DIGITS and tail.isdigit():
                    out.append(_Segment(obj["Key"], int(tail), obj["Size"], obj.get("ETag", ""),
                                        obj["LastModified"].timestamp()))
        return sorted(out, key=lambda s: s.offset)

    def _existing(self, session: str, name: str) -> list[_Segment]:
        segments = self._segments(session, name)
        if not segments:
            raise MissingObject(f"{name} is missing")
        return segments

    def _put(self, key: str, data: bytes) -> None:
        self._call(key, self.client.put_object, Key=key, Body=data)

    def _get(self, key: str, first: int, last: int) -> bytes:
        """Bytes ``first`` to ``last`` inclusive of an object (all of them, or an error)."""
        body = self._call(key, self.client.get_object, Key=key, Range=f"bytes={first}-{last}")["Body"]
        try:
            data = body.read()
        except Exception as err:  # the connection broke mid-body
            raise ObjectStoreError(f"the object store cannot be reached ({key}): {err}") from None
        finally:
            body.close()
        if len(data) != last - first + 1:
            raise ObjectStoreError(f"{key} changed while it was read")
        return data

    def _delete_keys(self, keys: list[str]) -> None:
        """Delete keys, the last ones first (so a file cut short by a crash is a prefix of itself)."""
        keys = sorted(set(keys), reverse=True)
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i : i + DELETE_BATCH]
            answer = self._call(batch[0], self.client.delete_objects,
                                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            failed = answer.get("Errors") or []
            if failed:
                raise ObjectStoreError(f"the object store did not delete {failed[0].get('Key')}: "
                                       f"{failed[0].get('Message') or failed[0].get('Code')}")

    def _fetches(self, pieces: list[_Piece], start: int, end: int) -> list[tuple[str, int, int]]:
        """The ranged GETs (key, first, last) that read the file's bytes ``start`` to ``end``."""
        out = []
        for p in pieces:
            lo, hi = max(start, p.start), min(end, p.start + p.length - 1)
            at = lo
            while at <= hi:
                upto = min(hi, at + FETCH_BYTES - 1)
                base = p.skip - p.start  # file position + base = position in the segment
                out.append((p.segment.key, at + base, upto + base))
                at = upto + 1
        return out

    def _stream(self, pieces: list[_Piece], start: int, end: int) -> Iterator[bytes]:
        """The file's bytes ``start`` to ``end``, a GET's worth at a time, a few GETs ahead."""
        fetches = deque(self._fetches(pieces, start, end))
        waiting: deque[Future] = deque()
        try:
            while fetches or waiting:
                while fetches and len(waiting) < FETCH_AHEAD:
                    waiting.append(self._downloads.submit(self._get, *fetches.popleft()))
                yield waiting.popleft().result()
        finally:
            for f in waiting:
                f.cancel()

    # -- FolderStorage's methods -----------------------------------------------------------

    def create(self, session: str, name: str, may_lose_s: float | None = None) -> BinaryIO:
        """A new, empty file open for writing (an existing one is replaced). Returns at once, with
        no request made: the old file's segments are deleted in the background when its first
        segment goes up, before it (or at close, with an empty first object if nothing was
        written; a failure there is raised by the next write, flush or close, as a failed put
        is). Not at once: a call's recording creates four files as it starts, and eight requests
        in that second, on the put threads, held the interpreter while the call's first audio
        came (audio dropped as late). Until then the old file, if any, is still there, and a new
        one is not. ``may_lose_s``: its bytes go up once the oldest waiting one is this old,
        instead of ``segment_seconds`` (``math.inf``: only at the close; a level strip, which is
        made again from the audio after a crash, at no puts before)."""
        file = self._file(session, name)
        first = self._key(file, 0)
        self._drop_cached(session, name)

        def replace(empty: bool) -> None:
            """The old segments deleted but the first, which the new first segment replaces, or an
            empty object when the new file is empty."""
            self._delete_keys([s.key for s in self._segments(session, name) if s.key != first])
            if empty:
                self._put(first, b"")

        return _Writer(self, file, 0, append=False, prepare=replace, put_after_s=may_lose_s)

    def append(self, session: str, name: str) -> BinaryIO:
        """An existing (or new) file open for appending (its segments are listed first: call it in
        a worker thread)."""
        file = self._file(session, name)
        segments = self._segments(session, name)
        pieces, stray = _plan(segments)
        size = _size(pieces)
        self._drop_cached(session, name)
        # Stray segments past the end would become the file's bytes once appending reached them.
        self._delete_keys([s.key for s in stray if s.offset >= size])
        if not any(s.offset == 0 for s in segments):
            self._put(self._key(file, 0), b"")
        return _Writer(self, file, size, append=True)

    def copy_in(self, source: str | os.PathLike, session: str, name: str,
                stopped: Callable[[], bool] = lambda: False) -> None:
        """Copy a local file in as ``name``, a block at a time; ``stopped`` is asked before each
        block: True leaves the copy unfinished for the caller to delete."""
        with open(source, "rb") as inp, self.create(session, name) as out:
            while (block := inp.read(COPY_BLOCK)) and not stopped():
                out.write(block)

    def path(self, session: str, name: str) -> Path:
        """A local copy of the file (for PyAV, which opens files itself), in the spool folder:
        downloaded, or the copy made before if the file's segments have not changed since.
        MissingObject (a FileNotFoundError) if there is no such file."""
        segments = self._existing(session, name)
        pieces, _ = _plan(segments)
        target = self._spool_dir("read", session) / name
        signature = tuple((s.key, s.size, s.etag) for s in segments)
        with self._cache_lock:
            if self._cached.get(target) == signature and target.is_file():
                os.utime(target)
                return target
        size = _size(pieces)
        part = target.with_name(f".{name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for block in self._stream(pieces, 0, size - 1):
                    out.write(block)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        with self._cache_lock:
            self._cached[target] = signature
        return target

    def writer_path(self, session: str, name: str) -> Path:
        """A spool path for PyAV to write a new file at; ``seal`` puts it in the bucket."""
        self._file(session, name)
        return self._spool_dir("write", session) / name

    def seal(self, session: str, name: str) -> None:
        """Put the file PyAV wrote at ``writer_path`` in the bucket as ``name``; the local file
        stays in the spool as ``path``'s copy of it."""
        source = self.writer_path(session, name)
        if not source.is_file():
            raise MissingObject(f"{name} was not written")
        self.copy_in(source, session, name)
        os.chmod(source, 0o600)
        target = self._spool_dir("read", session) / name
        os.replace(source, target)
        signature = tuple((s.key, s.size, s.etag) for s in self._segments(session, name))
        with self._cache_lock:
            self._cached[target] = signature

    def exists(self, session: str, name: str) -> bool:
        page = self._call(name, self.client.list_objects_v2, Prefix=self._file(session, name), MaxKeys=1)
        return bool(page.get("Contents"))

    def size(self, session: str, name: str) -> int:
        pieces, _ = _plan(self._existing(session, name))
        return _size(pieces)

    def modified(self, session: str, name: str) -> float | None:
        """When the file was last written (the bucket's clock), or None if it is missing."""
        segments = self._segments(session, name)
        return max(s.modified for s in segments) if segments else None

    def read(self, session: str, name: str) -> bytes:
        pieces, _ = _plan(self._existing(session, name))
        size = _size(pieces)
        return b"".join(self._stream(pieces, 0, size - 1))

    def read_range(self, session: str, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in blocks: the segments are listed once, then
        read by ranged GETs a few at a time."""
        pieces, _ = _plan(self._existing(session, name))
        size = _size(pieces)
        yield from self._stream(pieces, start, min(end, size - 1))

    def truncate(self, session: str, name: str, length: int) -> None:
        """Cut the file to ``length`` bytes (or lengthen it with zero bytes). The segments past
        ``length`` go first, the last first, then the one it falls in is put again shorter:
        interrupted, the file is longer than asked but still a prefix of what it was."""
        if length < 0:
            raise ValueError("a negative length")
        file = self._file(session, name)
        segments = self._existing(session, name)
        pieces, stray = _plan(segments)
        size = _size(pieces)
        self._drop_cached(session, name)
        gone = [s.key for s in stray]
        cut: _Piece | None = None
        for p in pieces:
            if p.start >= length and p.segment.offset != 0:
                gone.append(p.segment.key)
            elif p.start + p.length > length:
                cut = p
        self._delete_keys(gone)
        if cut is not None:
            keep = cut.skip + max(0, length - cut.start)
            self._put(cut.segment.key, self._get(cut.segment.key, 0, keep - 1) if keep else b"")
        if length > size:
            self._put(self._key(file, size), bytes(length - size))
        elif not any(s.offset == 0 for s in segments):
            self._put(self._key(file, 0), b"")

    def rename(self, session: str, old: str, new: str) -> None:
        """``old`` becomes ``new`` (replacing it): its segments copied in the bucket, then deleted."""
        if old == new:
            self._existing(session, old)
            return
        segments = self._existing(session, old)
        source, target = self._file(session, old), self._file(session, new)
        self._drop_cached(session, old)
        self._drop_cached(session, new)
        self._delete_keys([s.key for s in self._segments(session, new)])
        for s in segments:
            self._call(s.key, self.client.copy_object, Key=target + s.key[len(source):],
                       CopySource={"Bucket": self.bucket, "Key": s.key})
        self._delete_keys([s.key for s in segments])

    def delete(self, session: str, name: str) -> None:
        self._drop_cached(session, name)
        self.writer_path(session, name).unlink(missing_ok=True)
        self._delete_keys([s.key for s in self._segments(session, name)])

    def names(self, session: str) -> list[str]:
        """The session's files, by name (none if it has none). From its objects, not from a
        listing by "/": SeaweedFS lists a file whose segments are all deleted as a folder still."""
        folder = self._folder(session)
        out = set()
        for page in self._list(folder):
            for obj in page.get("Contents", []):
                name, _, tail = obj["Key"][len(folder):].partition("/")
                if NAME.fullmatch(name) and len(tail) == OFFSET_DIGITS and tail.isdigit():
                    out.add(name)
        return sorted(out)

    def delete_session(self, session: str) -> None:
        folder = self._folder(session)
        for kind in ("read", "write"):
            shutil.rmtree(self.spool / kind / session, ignore_errors=True)
        with self._cache_lock:
            for path in [p for p in self._cached if p.parent.name == session]:
                del self._cached[path]
        keys = [obj["Key"] for page in self._list(folder) for obj in page.get("Contents", [])]
        self._delete_keys(keys)

    # -- staging: an import's files before they are a session's ----------------------------

    def new_staging(self, kind: str, owner: str | None = None) -> str:
        """A new staging name for an import's files (``kind``: "import" or "upload"; ``owner``:
        the node making it, storage.staging_name), used like a session's with every method here
        (nothing is made in the bucket until a file is)."""
        return staging_name(kind, owner)

    def move_session(self, staging: str, session: str) -> None:
        """A staging folder's files become the session's: copied in the bucket, then deleted from
        the staging folder (not at once, as the folder's rename is: the import that moves them
        stores the session's rows only after, and removes the session's files if it fails)."""
        if not STAGING.fullmatch(staging):
            raise ValueError(f"not a staging folder: {staging[:80]!r}")
        source, target = self._folder(staging), self._folder(session)
        if self._call(session, self.client.list_objects_v2, Prefix=target, MaxKeys=1).get("Contents"):
            raise StorageError(f"session {session} has files already")
        keys = [obj["Key"] for page in self._list(source) for obj in page.get("Contents", [])]
        for key in keys:
            self._call(key, self.client.copy_object, Key=target + key[len(source):],
                       CopySource={"Bucket": self.bucket, "Key": key})
        self._delete_keys(keys)
        for kind in ("read", "write"):
            shutil.rmtree(self.spool / kind / staging, ignore_errors=True)

    def staging(self) -> list[tuple[str, float]]:
        """The staging folders there are, each with when it last changed (the bucket's clock)."""
        changed: dict[str, float] = {}
        for kind in ("import-", "upload-"):
            for page in self._list(self.prefix + kind):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix):].split("/", 1)[0]
                    if STAGING.fullmatch(name):
                        changed[name] = max(changed.get(name, 0.0), obj["LastModified"].timestamp())
        return sorted(changed.items())

    def free_bytes(self) -> int:
        """Bytes free on the spool's disk (the data folder's), where an import's files are
        downloaded for PyAV: the bucket itself has no such limit to ask about."""
        self.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        return shutil.disk_usage(self.spool).free

    # -- upkeep ----------------------------------------------------------------------------

    def check(self) -> None:
        """StorageError unless the bucket answers (at start, to fail at once with the reason)."""
        try:
            self._call(self.bucket, self.client.head_bucket)
        except MissingObject:
            raise StorageError(f"the bucket {self.bucket} does not exist") from None
        except ObjectStoreError as err:
            raise StorageError(f"the bucket {self.bucket} cannot be used: {err}") from None

    def clean_up(self, now: float | None = None) -> dict[str, int]:
        """Remove spool files unused for ``LEFT_BEHIND_S`` and abort multipart uploads under the
        prefix begun that long ago; returns how many of each."""
        now = time.time() if now is None else now
        before = now - LEFT_BEHIND_S
        aborted = 0
        marker: dict[str, str] = {}
        while True:
            page = self._call("multipart uploads", self.client.list_multipart_uploads, Prefix=self.prefix, **marker)
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < before:
                    self._call(upload["Key"], self.client.abort_multipart_upload, Key=upload["Key"],
                               UploadId=upload["UploadId"])
                    aborted += 1
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}
        removed = 0
        for kind in ("read", "write"):
            root = self.spool / kind
            if not root.is_dir():
                continue
            for folder in list(root.iterdir()):
                for path in list(folder.iterdir()) if folder.is_dir() else []:
                    try:
                        if path.stat().st_mtime < before:
                            path.unlink()
                            removed += 1
                    except FileNotFoundError:
                        pass
                try:
                    folder.rmdir()  # only if empty
                except OSError:
                    pass
        with self._cache_lock:
            for path in [p for p in self._cached if not p.exists()]:
                del self._cached[path]
        return {"spool_files": removed, "multipart_uploads": aborted}

    def close(self) -> None:
        self._uploads.shutdown(wait=True)
        self._downloads.shutdown(wait=True)

    # -- the spool -----------------------------------------------------------------------

    def _spool_dir(self, kind: str, session: str) -> Path:
        self._folder(session)
        folder = self.spool / kind / session
        self.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        for f in (self.spool, self.spool / kind, folder):
            f.mkdir(mode=0o700, exist_ok=True)
            os.chmod(f, 0o700)
        return folder

    def _drop_cached(self, session: str, name: str) -> None:
        target = self.spool / "read" / session / name
        with self._cache_lock:
            self._cached.pop(target, None)
        target.unlink(missing_ok=True)


class _Writer(io.RawIOBase):
    """A file of the bucket open for writing: its bytes go up as segments (module doc).

    Its segments are queued and handed to the storage's put threads ``PENDING_SEGMENTS`` at a
    time, after ``prepare`` (``create``'s deletion of the old file) has run. The queue is shared
    with those threads, under ``_lock``; everything else is the writer's own."""

    def __init__(self, storage: ObjectStorage, file: str, start: int, append: bool,
                 prepare: Callable[[bool], None] | None = None, put_after_s: float | None = None) -> None:
        super().__init__()
        self._s, self._file, self._append = storage, file, append
        self._put_after_s = storage.segment_seconds if put_after_s is None else put_after_s
        self._start = self._flushed = self._pos = start  # bytes before _flushed are put (or on their way)
        self._buf = bytearray()
        self._since: float | None = None  # when the oldest waiting byte was written
        self._mine: list[tuple[int, int]] = []  # (offset, size) of the segments put
        self._kept: bytearray | None = bytearray()  # what was put, while small enough to merge
        self._refused: OSError | None = None  # too much waited to go up (on an event loop): writes fail
        self._closing = False
        self._lock = threading.Condition()
        self._queue: deque[tuple[str, bytes]] = deque()  # segments not handed to a thread yet
        self._sending = 0  # segments handed to a thread and not put yet
        self._waiting = 0  # bytes of the segments queued or being put
        self._ready = prepare is None  # segments may go (prepare has run)
        self._preparing = prepare  # until the first segment or close (_begin)
        self._failed: OSError | None = None  # the first put that failed: raised by every call after

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        end = self._flushed + len(self._buf)
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence})")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: end}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "a negative position")
        self._pos = base + offset
        return self._pos

    def write(self, b) -> int:
        self._checkClosed()
        self._raise_failed()
        self._room()
        data = bytes(b)
        n = len(data)
        end = self._flushed + len(self._buf)
        if self._append:
            self._pos = end
        if self._pos > end:  # past the end: the gap reads as zero bytes, as in a file
            data, self._pos = bytes(self._pos - end) + data, end
        if self._pos < self._flushed:  # bytes already put (a header's lengths): their segments again
            head = data[: self._flushed - self._pos]
            self._rewrite(self._pos, head)
            data, self._pos = data[len(head):], self._pos + len(head)
        if data:
            if not self._buf:
                self._since = time.monotonic()
            at = self._pos - self._flushed
            self._buf[at : at + len(data)] = data
            self._pos += len(data)
        while len(self._buf) >= self._s.segment_bytes:
            self._put(self._s.segment_bytes)
        if self._due():
            self._put(len(self._buf))
        return n

    def flush(self) -> None:
        """Put what waits if it has waited ``segment_seconds`` (or the file's ``may_lose_s``; not
        at every flush: a call's recorder flushes every second, and a segment a second would make
        thousands)."""
        if self.closed or self._closing:
            return
        self._raise_failed()
        self._room()
        if self._due():
            self._put(len(self._buf))

    def close(self) -> None:
        """Put what waits, wait for every segment, merge small ones (module doc). It waits for
        the store: call it in a worker thread. A writer refused for a store too slow still puts
        what it took."""
        if self.closed:
            return
        self._closing = True
        try:
            if self._buf:
                self._put(len(self._buf))
            self._begin(empty=not self._mine)
            self._drain()
            if self._kept is not None and len(self._mine) > 1:
                self._s._put(self._s._key(self._file, self._start), bytes(self._kept))
                self._s._delete_keys([self._s._key(self._file, offset) for offset, _ in self._mine[1:]])
                self._mine = [(self._start, len(self._kept))]
        finally:
            self._buf.clear()
            self._since = None
            with self._lock:
                self._waiting -= sum(len(data) for _, data in self._queue)
                self._queue.clear()
            super().close()  # flushes first: nothing waits now

    def _due(self) -> bool:
        return bool(self._buf) and self._since is not None and (
            time.monotonic() - self._since >= self._put_after_s)

    def _room(self) -> None:
        """On an event loop nothing waits for the store: once more than the storage's
        ``pending_bytes`` wait to go up, this write and every one after fail (ObjectStoreError,
        an OSError: the recording stops as on a full disk)."""
        if self._refused is None and _on_event_loop():
            with self._lock:
                waiting = self._waiting
            if waiting > self._s.pending_bytes:
                self._refused = ObjectStoreError(
                    f"the object store is not keeping up: {waiting} bytes of {self._file} are still waiting to go up")
        if self._refused is not None:
            raise self._refused

    def _put(self, count: int) -> None:
        """The first ``count`` waiting bytes as a segment, queued to go up in the background. In
        a worker thread it first waits until fewer than ``PENDING_SEGMENTS`` are queued or on
        their way; on an event loop it never waits (``_room`` bounds the queue)."""
        segment = bytes(self._buf[:count])
        offset = self._flushed
        self._begin(empty=False)
        if not _on_event_loop():
            self._wait_until(lambda: len(self._queue) + self._sending < PENDING_SEGMENTS)
        with self._lock:
            if self._failed is None:
                self._queue.append((self._s._key(self._file, offset), segment))
                self._waiting += len(segment)
                self._pump()
        self._mine.append((offset, len(segment)))
        if self._kept is not None:
            self._kept += segment
            if len(self._kept) > self._s.merge_bytes:
                self._kept = None
        del self._buf[:count]
        self._flushed += len(segment)
        self._since = time.monotonic() if self._buf else None

    # -- the put threads' side (each under _lock) ---------------------------------------------

    def _pump(self) -> None:
        """Hand queued segments to the put threads, ``PENDING_SEGMENTS`` at most at once (with
        ``_lock`` held)."""
        while self._ready and self._failed is None and self._queue and self._sending < PENDING_SEGMENTS:
            key, data = self._queue.popleft()
            self._sending += 1
            if not self._submit(key, self._send, key, data):
                self._sending -= 1
                self._waiting -= len(data)

    def _begin(self, empty: bool) -> None:
        """Start ``create``'s preparation in a put thread (once): ``empty`` when the file has no
        segment to replace its first one."""
        prepare, self._preparing = self._preparing, None
        if prepare is not None:
            with self._lock:
                if not self._submit(self._file, self._prepare, prepare, empty):
                    self._ready = True

    def _submit(self, what: str, fn: Callable, *args) -> bool:
        """Hand ``fn`` to a put thread (with ``_lock`` held); when the storage is closed the
        writer fails instead, and this says False."""
        try:
            self._s._uploads.submit(fn, *args)
        except RuntimeError:  # the storage is closed
            self._fail(ObjectStoreError(f"the object store's client is closed ({what})"))
            return False
        return True

    def _prepare(self, prepare: Callable[[bool], None], empty: bool) -> None:
        try:
            prepare(empty)
        except Exception as err:
            with self._lock:
                self._fail(err)
        with self._lock:
            self._ready = True
            self._pump()
            self._lock.notify_all()

    def _send(self, key: str, data: bytes) -> None:
        try:
            self._s._put(key, data)
        except Exception as err:
            with self._lock:
                self._fail(err)
        with self._lock:
            self._sending -= 1
            self._waiting -= len(data)
            self._pump()
            self._lock.notify_all()

    def _fail(self, err: Exception) -> None:
        """The first failure stays (with ``_lock`` held): the file ends before it, so nothing
        queued after it goes up."""
        if self._failed is None:
            self._failed = err if isinstance(err, OSError) else ObjectStoreError(f"a put failed: {err}")
            self._waiting -= sum(len(data) for _, data in self._queue)
            self._queue.clear()

    # -- waiting (in a worker thread) ----------------------------------------------------------

    def _wait_until(self, condition: Callable[[], bool]) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self._failed is not None or condition())
            failed = self._failed
        if failed is not None:
            raise failed

    def _drain(self) -> None:
        """Wait until every segment is put; raise the first that failed."""
        self._wait_until(lambda: self._ready and not self._queue and not self._sending)

    def _raise_failed(self) -> None:
        with self._lock:
            failed = self._failed
        if failed is not None:
            raise failed

    def _rewrite(self, position: int, data: bytes) -> None:
        """Bytes at ``position``, before the waiting ones: the segments they fall in put again."""
        if position < self._start:
            raise OSError(errno.EINVAL, "cannot write before where this file was opened")
        self._drain()
        for offset, size in self._mine:
            lo, hi = max(position, offset), min(position + len(data), offset + size)
            if lo >= hi:
                continue
            key = self._s._key(self._file, offset)
            segment = bytearray(self._s._get(key, 0, size - 1))
            segment[lo - offset : hi - offset] = data[lo - position : hi - position]
            self._s._put(key, bytes(segment))
            if self._kept is not None:
                self._kept[lo - self._start : hi - self._start] = data[lo - position : hi - position]


def _on_event_loop() -> bool:
    """Whether the caller runs on an asyncio event loop (a call's recording), where nothing may
    wait for the store."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _client(location: Location):
    """A boto3 S3 client for the location (boto3 reads the credentials)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageError("recordings in an object store need boto3: pip install 'livecoach[s3]'") from None
    options: dict = {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 60,
                     "max_pool_connections": 32}
    if location.endpoint:
        options["s3"] = {"addressing_style": "path"}  # a store on its own host name (MinIO, SeaweedFS)
    try:
        # Checksums only where S3 requires them: boto3 >= 1.36 adds them to every upload by
        # default, which several S3-compatible stores refuse.
        config = Config(**options, request_checksum_calculation="when_required",
                        response_checksum_validation="when_required")
    except TypeError:  # botocore < 1.36 has neither option (nor the default)
        config = Config(**options)
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=location.endpoint, config=config,
                          region_name=location.region or session.region_name or "us-east-1")
