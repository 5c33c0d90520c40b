"""Command-line arguments that several ``livecoach`` commands take, declared once."""

from __future__ import annotations

import argparse

from .settings import env_default


def add_data(parser: argparse.ArgumentParser) -> None:
    """``--data``: the data folder a command reads and writes."""
    parser.add_argument("--data", default=env_default("data", "data"), help="data folder (default ./data)")


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
