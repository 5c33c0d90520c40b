"""Command-line arguments that several ``livecoach`` commands take, declared once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .settings import add_database_argument, database_location, env_default

if TYPE_CHECKING:
    from .recordings.storage import RecordingStorage
    from .store import Store


def add_data(parser: argparse.ArgumentParser) -> None:
    """``--data``: the data folder a command reads and writes; ``--database``: its database, if
    not the SQLite file in that folder."""
    parser.add_argument("--data", default=env_default("data", "data"), help="data folder (default ./data)")
    add_database_argument(parser)


def open_store(args: argparse.Namespace) -> Store:
    """The store the command's ``--data`` and ``--database`` name; a database that cannot be
    opened ends the command with a one-line message (not a traceback)."""
    from .store import DatabaseUnavailable, Store

    try:
        return Store(database_location(Path(args.data), args.database))
    except DatabaseUnavailable as err:
        raise SystemExit(f"livecoach: {err}") from None


def open_recordings(args: argparse.Namespace) -> RecordingStorage:
    """The recordings' storage the command's ``--recordings`` (and ``--data``) name; one that
    cannot be used ends the command with a one-line message."""
    from .recordings.storage import StorageError, open_storage

    try:
        return open_storage(args.recordings, Path(args.data))
    except (ValueError, StorageError) as err:
        raise SystemExit(f"livecoach: --recordings: {err}") from None


def add_call_files(parser: argparse.ArgumentParser) -> None:
    """A recorded call's audio: ``--coach A --client B`` (a file per participant) or ``--stereo F``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--coach", metavar="AUDIO", help="the coach's recording (needs --client)")
    source.add_argument("--stereo", metavar="FILE", help="a stereo recording: left the coach, right the client")
    parser.add_argument("--client", metavar="AUDIO", help="the client's recording (with --coach)")


def call_files_mistake(args: argparse.Namespace) -> str | None:
    """What is wrong with the call's files as given (a usage mistake), or None."""
    if args.coach and not args.client:
        return "--coach needs --client (or use --stereo)"
    if args.client and not args.coach:
        return "--client needs --coach (or use --stereo)"
    return None
