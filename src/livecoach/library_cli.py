"""``livecoach sessions`` and ``livecoach report``: the library and a session's report from the
command line, on the data folder, without a server (docs/library.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .cli_arguments import add_data, open_store

COMMANDS = ("sessions", "report")


def add_parsers(sub: Any) -> None:
    """The two commands' arguments, on ``livecoach``'s subparsers."""
    sessions = sub.add_parser("sessions", help="list the sessions with their figures", description=(
        "List the sessions, newest first: id, client, when it started, duration, the coach's talk share, "
        "tag count and whether it was recorded."))
    sessions.add_argument("--client", metavar="NAME", help="only this client's sessions")
    sessions.add_argument("--coach", metavar="EMAIL", help="only this coach's sessions (default: every coach's)")
    sessions.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    report = sub.add_parser("report", help="a session's one-page report as a standalone HTML file", description=(
        "Write a session's report (participation, behaviour, results) as one HTML file that opens and prints "
        "anywhere: the same report as the report page."))
    report.add_argument("session")
    report.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    report.add_argument("--without", metavar="PARTS", default="", help=(
        "leave these parts out, comma-separated: notes, nudges, behaviour, tags, summary, next_steps "
        "(a copy to share with the client)"))
    for command in (sessions, report):
        add_data(command)


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        return _sessions(store, args) if args.command == "sessions" else _report(store, args)
    finally:
        store.close()


def _sessions(store: Any, args: argparse.Namespace) -> int:
    from . import accounts, library
    from .report_html import clock

    coach_id = None
    if args.coach:
        found = store.coach_login_details(accounts.normal_email(args.coach))
        if found is None:
            print(f"livecoach: there is no coach {args.coach}", file=sys.stderr)
            return 1
        coach_id = found[0].id
    rows = store.library_rows(coach_id)
    if args.client is not None:
        rows = [row for row in rows if row.session.client == args.client.strip()]
    rows, _ = library.up_to_date(store, rows)
    listed = [_listed(library.entry(row.session, row.figures)) for row in rows]
    if args.format == "json":
        print(json.dumps({"version": library.VERSION, "sessions": listed}, ensure_ascii=False, indent=2))
        return 0
    if not listed:
        print("no sessions" + (f" of {args.client}" if args.client is not None else ""))
        return 0
    table = [("ID", "CLIENT", "STARTED", "DURATION", "TALK SHARE", "TAGS", "RECORDED")]
    for s in listed:
        share = s["talk_share_coach"]
        table.append((
            s["id"], s["client"] or "-", datetime.fromtimestamp(s["created_at"]).strftime("%Y-%m-%d %H:%M"),
            clock(s["duration_s"]), "-" if share is None else f"coach {round(share * 100)}%",
            str(s["tag_count"]), "yes" if s["recorded"] else "no",
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _listed(entry: dict[str, Any]) -> dict[str, Any]:
    """A session as ``livecoach sessions --format json`` lists it (docs/library.md)."""
    from .library import iso_time

    f = entry["figures"]
    return {
        "id": entry["id"], "client": entry["client"], "label": entry["label"], "origin": entry["origin"],
        "started": iso_time(entry["created_at"]), "created_at": entry["created_at"],
        "duration_s": f["duration_s"], "talk_share_coach": f["talk_share_coach"], "tag_count": f["tag_count"],
        "recorded": f["recorded"], "live": f["live"],
    }


def _report(store: Any, args: argparse.Namespace) -> int:
    from . import report_html, session_report
    from .app import web_folder
    from .library_api import report_css

    if store.get_session(args.session) is None:
        print(f"livecoach: there is no session {args.session}", file=sys.stderr)
        return 1
    try:
        without = session_report.parts(args.without)
    except session_report.UnknownPart as err:
        print(f"livecoach: {err}", file=sys.stderr)
        return 1
    page = report_html.document(session_report.build_report(store, args.session, without), report_css(web_folder()))
    if not args.output:
        sys.stdout.write(page)
        return 0
    try:
        Path(args.output).write_text(page, encoding="utf-8")
    except OSError as err:
        print(f"livecoach: cannot write {args.output}: {err.strerror}", file=sys.stderr)
        return 1
    print(f"the report of {args.session} is in {args.output}", file=sys.stderr)
    return 0
