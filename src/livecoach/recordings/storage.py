"""Every file of a recording, read and written here and nowhere else.

Recordings live in ``<data>/recordings/<session>/<name>``. Only the server's user may read
them: folders are 0700, files 0600. Names are checked here, so no caller can reach outside a
session's folder. ``--recordings s3://BUCKET`` keeps them in an object store instead
(objects.py, the same methods); ``open_storage`` picks the one asked for, for every command.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

NAME = re.compile(r"[A-Za-z0-9_-]{1,80}(\.[a-z0-9]{1,8}){0,2}")
SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
READ_BLOCK = 64 * 1024
COPY_BLOCK = 4 * 1024 * 1024
STAGING = re.compile(r"(import|upload)-(?:[A-Za-z0-9_-]{1,40}-)?[0-9a-f]{16}")
"""A folder of work in progress beside the sessions' folders: an import's files while it is
uploaded or analysed, ``<kind>-[<owner>-]<16 hex>`` (``staging_name``). Never a session's id
(those are 12 characters), so never shown as one."""
OWNER_CHARS = 40
"""The most characters of an owner's id in a staging name (a longer id goes as a digest of it):
the name is used like a session id, at most 64 characters."""


def _owner_tag(owner: str) -> str:
    return owner if len(owner) <= OWNER_CHARS else hashlib.sha256(owner.encode()).hexdigest()[:OWNER_CHARS]


def staging_name(kind: str, owner: str | None = None) -> str:
    """A new staging folder's name: ``<kind>-<16 hex>``, or ``<kind>-<owner>-<16 hex>`` with the
    id of the node that made it (``owner``, nodes.py) when several servers share the storage, so
    that each one's upkeep can tell its own leftovers from the others' work (``made_by``)."""
    name = f"{kind}-{'' if owner is None else _owner_tag(owner) + '-'}{secrets.token_hex(8)}"
    if not STAGING.fullmatch(name):
        raise ValueError(f"not a kind of staging folder, or not a node's id: {kind!r}, {owner!r}")
    return name


def made_by(name: str, kind: str, owner: str | None = None) -> bool:
    """Whether ``name`` is a staging folder that ``staging_name(kind, owner)`` makes: without
    ``owner``, only the names with none."""
    tag = "" if owner is None else re.escape(_owner_tag(owner)) + "-"
    return re.fullmatch(f"{re.escape(kind)}-{tag}[0-9a-f]{{16}}", name) is not None


class StorageError(Exception):
    """A file could not be written or read (a full disk, a missing file)."""


class RecordingStorage(Protocol):
    """What callers use of a recordings' storage: FolderStorage or objects.ObjectStorage."""

    def create(self, session: str, name: str, may_lose_s: float | None = None) -> BinaryIO: ...
    def append(self, session: str, name: str) -> BinaryIO: ...
    def path(self, session: str, name: str) -> Path: ...
    def writer_path(self, session: str, name: str) -> Path: ...
    def seal(self, session: str, name: str) -> None: ...
    def copy_in(self, source: str | os.PathLike, session: str, name: str,
                stopped: Callable[[], bool] = ...) -> None: ...
    def exists(self, session: str, name: str) -> bool: ...
    def size(self, session: str, name: str) -> int: ...
    def modified(self, session: str, name: str) -> float | None: ...
    def read(self, session: str, name: str) -> bytes: ...
    def read_range(self, session: str, name: str, start: int, end: int) -> Iterator[bytes]: ...
    def truncate(self, session: str, name: str, length: int) -> None: ...
    def rename(self, session: str, old: str, new: str) -> None: ...
    def delete(self, session: str, name: str) -> None: ...
    def names(self, session: str) -> list[str]: ...
    def delete_session(self, session: str) -> None: ...
    def new_staging(self, kind: str, owner: str | None = None) -> str: ...
    def move_session(self, staging: str, session: str) -> None: ...
    def staging(self) -> list[tuple[str, float]]: ...
    def free_bytes(self) -> int: ...
    def clean_up(self, now: float | None = None) -> dict[str, int]: ...


def open_storage(spec: str | None, data: str | os.PathLike) -> RecordingStorage:
    """The recordings' storage ``--recordings`` names: none, the ``recordings`` folder in the
    data folder; ``s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]``, that bucket (objects.py),
    with its spool in the data folder; anything else, a folder. One per location and process
    (an object store's client and threads are made once). ValueError for a location that is not
    one; StorageError for a bucket that does not answer."""
    if not spec:
        return FolderStorage(Path(data) / "recordings")
    if "://" not in spec:
        return FolderStorage(Path(spec))
    from .objects import SPOOL_FOLDER, ObjectStorage, parse_location

    location = parse_location(spec)
    spool = (Path(data) / SPOOL_FOLDER).resolve()
    with _opened_lock:
        storage = _opened.get((location, spool))
        if storage is None:
            storage = ObjectStorage(location, spool)
            storage.check()
            _opened[(location, spool)] = storage
    return storage


_opened: dict = {}
_opened_lock = threading.Lock()


class FolderStorage:
    """Recordings in a folder of the local disk."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _folder(self, session: str) -> Path:
        if not SESSION.fullmatch(session):
            raise ValueError(f"not a session id: {session[:80]!r}")
        return self.root / session

    def path(self, session: str, name: str) -> Path:
        """The file's path (for PyAV, which opens files itself)."""
        if not NAME.fullmatch(name):
            raise ValueError(f"not a recording file name: {name[:100]!r}")
        return self._folder(session) / name

    def _ensure_folder(self, session: str) -> Path:
        folder = self._folder(session)
        for f in (self.root, folder):
            f.mkdir(mode=0o700, exist_ok=True, parents=True)
            os.chmod(f, 0o700)
        return folder

    def create(self, session: str, name: str, may_lose_s: float | None = None) -> BinaryIO:
        """A new, empty file open for appending (an existing one is truncated). ``may_lose_s``
        (how many seconds of its newest bytes a killed process may lose) changes nothing here:
        each flush hands them to the system."""
        self._ensure_folder(session)
        path = self.path(session, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        return os.fdopen(fd, "wb", buffering=0)

    def append(self, session: str, name: str) -> BinaryIO:
        """An existing (or new) file open for appending."""
        self._ensure_folder(session)
        fd = os.open(self.path(session, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "ab", buffering=0)

    def writer_path(self, session: str, name: str) -> Path:
        """A path to write a new file at (by PyAV), with the folder made and the mode set after."""
        self._ensure_folder(session)
        return self.path(session, name)

    def copy_in(self, source: str | os.PathLike, session: str, name: str,
                stopped: Callable[[], bool] = lambda: False) -> None:
        """Copy a file of the user's (an imported call's) in as ``name``, a block at a time;
        ``stopped`` is asked before each block: True leaves the copy unfinished for the caller
        to delete."""
        with open(source, "rb") as inp, self.create(session, name) as out:
            while (block := inp.read(COPY_BLOCK)) and not stopped():
                out.write(block)

    def seal(self, session: str, name: str) -> None:
        """Make a file written by another library readable by the server's user only."""
        os.chmod(self.path(session, name), 0o600)

    def exists(self, session: str, name: str) -> bool:
        return self.path(session, name).is_file()

    def size(self, session: str, name: str) -> int:
        try:
            return self.path(session, name).stat().st_size
        except FileNotFoundError:
            raise StorageError(f"{name} is missing") from None

    def modified(self, session: str, name: str) -> float | None:
        """When the file was last written (wall clock), or None if it is missing."""
        try:
            return self.path(session, name).stat().st_mtime
        except FileNotFoundError:
            return None

    def read(self, session: str, name: str) -> bytes:
        try:
            return self.path(session, name).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{name} is missing") from None

    def read_range(self, session: str, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in blocks."""
        with open(self.path(session, name), "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                block = f.read(min(READ_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def truncate(self, session: str, name: str, length: int) -> None:
        os.truncate(self.path(session, name), length)

    def rename(self, session: str, old: str, new: str) -> None:
        os.replace(self.path(session, old), self.path(session, new))

    def delete(self, session: str, name: str) -> None:
        self.path(session, name).unlink(missing_ok=True)

    def names(self, session: str) -> list[str]:
        """The session's files, by name (none if it has no folder)."""
        try:
            return sorted(p.name for p in self._folder(session).iterdir() if p.is_file())
        except FileNotFoundError:
            return []

    def delete_session(self, session: str) -> None:
        shutil.rmtree(self._folder(session), ignore_errors=True)

    # -- staging: an import's files before they are a session's ------------------------------

    def new_staging(self, kind: str, owner: str | None = None) -> str:
        """A new, empty staging folder for an import's files (``kind``: "import" or "upload";
        ``owner``: the node making it, ``staging_name``); its name is used like a session's with
        every method here."""
        name = staging_name(kind, owner)
        self._ensure_folder(name)
        return name

    def move_session(self, staging: str, session: str) -> None:
        """A staging folder's files become the session's, all at once (one rename)."""
        if not STAGING.fullmatch(staging):
            raise ValueError(f"not a staging folder: {staging[:80]!r}")
        target = self._folder(session)
        if target.exists():
            raise StorageError(f"session {session} has files already")
        try:
            os.rename(self._folder(staging), target)
        except OSError as err:
            raise StorageError(f"cannot move {staging} to {session}: {err.strerror}") from None

    def staging(self) -> list[tuple[str, float]]:
        """The staging folders there are, each with when it last changed (wall clock)."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and STAGING.fullmatch(entry.name):
                try:
                    out.append((entry.name, entry.stat().st_mtime))
                except FileNotFoundError:
                    pass
        return sorted(out)

    def free_bytes(self) -> int:
        """Bytes free on the recordings' disk (for a new user, as ``df`` shows)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def clean_up(self, now: float | None = None) -> dict[str, int]:
        """Nothing is left behind in a folder (objects.ObjectStorage.clean_up has work to do)."""
        return {}
