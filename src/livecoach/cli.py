"""The ``livecoach`` command."""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from . import exports_cli, library_cli
from .cli_arguments import add_call_files, add_data, call_files_mistake, open_recordings, open_store
from .ingest import AudioError
from .settings import add_recordings_argument, days_or_none, add_server_arguments, env_default, settings_from

FORMATS = ("text", "json", "rttm")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from . import heap

        heap.use_system_malloc(argv)  # Python's objects in glibc's heap, where trimming reaches them
    parser = argparse.ArgumentParser(prog="livecoach", description="Talk balance, silence and wait time for coaching calls.")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse a recorded session", description=(
        "Analyse a recorded 1:1 session: either one file per participant, or one stereo file "
        "(left channel the coach, right channel the client)."))
    add_call_files(analyze)
    analyze.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    analyze.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")

    serve = sub.add_parser("serve", help="start the server", description="Start the livecoach server.")
    add_server_arguments(serve)

    session = sub.add_parser("session", help="manage sessions")
    session_sub = session.add_subparsers(dest="session_command", required=True)
    new = session_sub.add_parser("new", help="create a session and print its two links")
    add_data(new)
    new.add_argument("--label", default="", help="a name for the session, e.g. the client's")
    new.add_argument("--url", default=None, help="the server's public base URL (default http://127.0.0.1:8080)")
    new.add_argument("--coach", metavar="EMAIL", help="whose session it is (needed when there are several coaches)")

    coach = sub.add_parser("coach", help="manage coach accounts", description=(
        "Coach accounts: each coach logs in, sees and changes only their own sessions."))
    coach_sub = coach.add_subparsers(dest="coach_command", required=True)
    add = coach_sub.add_parser("add", help="add a coach (asks for the password)")
    add.add_argument("email")
    add.add_argument("--name", required=True, help="the coach's name, as their pages show it")
    password = coach_sub.add_parser("password", help="set a coach's password (ends their logins)")
    password.add_argument("email")
    listing = coach_sub.add_parser("list", help="list the coaches")
    for command in (add, password, listing):
        add_data(command)
    for command in (add, password):
        command.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of standard input (for scripts)")

    delete = sub.add_parser("delete", help="delete a session: every row and file of it")
    delete.add_argument("session")
    erase = sub.add_parser("erase", help="erase one participant of a session: their recordings and what names them")
    erase.add_argument("session")
    erase.add_argument("--participant", choices=("client", "coach"), default="client")
    purge = sub.add_parser("purge", help="delete what is past its retention now (the server does it hourly)")
    purge.add_argument("--keep-recordings-days", type=float, default=days_or_none(env_default("keep-recordings-days")),
                       metavar="D", help="delete recordings D days after their call was last active")
    purge.add_argument("--keep-sessions-days", type=float, default=days_or_none(env_default("keep-sessions-days")),
                       metavar="D", help="delete whole sessions D days after their call was last active")
    for command in (delete, erase, purge):
        add_data(command)
        add_recordings_argument(command)
    library_cli.add_parsers(sub)
    exports_cli.add_parsers(sub)

    args = parser.parse_args(argv)
    if args.command in ("analyze", "import") and (mistake := call_files_mistake(args)) is not None:
        parser.error(mistake)
    if args.command == "analyze":
        return _analyze(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "session":
        return _new_session(args)
    if args.command == "coach":
        return _coach(args)
    if args.command in ("delete", "erase", "purge"):
        return _retention(args)
    if args.command in library_cli.COMMANDS:
        return library_cli.run(args)
    if args.command in exports_cli.COMMANDS:
        return exports_cli.run(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from .app import serve as run_server
    from .nodes import NodeIdTaken
    from .recordings.storage import StorageError
    from .store import DatabaseUnavailable

    settings = settings_from(args)
    try:
        settings.recordings_storage()  # a bucket that does not answer stops the server at once
    except (ValueError, StorageError) as err:
        raise SystemExit(f"livecoach: --recordings: {err}") from None
    try:
        run_server(settings)
    except (DatabaseUnavailable, NodeIdTaken) as err:
        raise SystemExit(f"livecoach: {err}") from None
    return 0


def _retention(args: argparse.Namespace) -> int:
    from . import retention

    store = open_store(args)
    try:
        storage = open_recordings(args)
        if args.command == "purge":
            done = retention.purge(store, storage, args.keep_recordings_days, args.keep_sessions_days)
            storage.clean_up()  # the object store's leftovers (recordings/objects.py)
            print(f"deleted {done.sessions} sessions and {done.recordings} recordings")
            return 0
        if store.get_session(args.session) is None:
            print(f"livecoach: there is no session {args.session}", file=sys.stderr)
            return 1
        if args.command == "delete":
            retention.delete_session(store, storage, args.session)
            print(f"session {args.session} deleted")
        else:
            n = retention.erase_participant(store, storage, args.session, args.participant)
            print(f"the {args.participant} of {args.session} erased ({n} recordings)")
        return 0
    finally:
        store.close()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("The same again: ") != first:
        raise SystemExit("livecoach: the two passwords differ; nothing changed")
    return first


def _coach(args: argparse.Namespace) -> int:
    from . import accounts
    from .store import CoachExists

    store = open_store(args)
    try:
        if args.coach_command == "list":
            for c in store.coaches():
                print(f"{c.email}\t{c.name}")
            return 0
        try:
            if args.coach_command == "add":
                coach = accounts.add_coach(store, args.email, args.name, _read_password(args))
                (Path(args.data) / "setup-code").unlink(missing_ok=True)  # the first run is done
                print(f"coach {coach.email} added")
                return 0
            found = store.coach_login_details(accounts.normal_email(args.email))
            if found is None:
                print(f"livecoach: there is no coach {args.email}", file=sys.stderr)
                return 1
            store.set_password(found[0].id, accounts.hash_password(_read_password(args)))
            print(f"the password of {found[0].email} is changed; their logins have ended")
            return 0
        except accounts.AccountError as err:
            print(f"livecoach: {err}", file=sys.stderr)
            return 1
        except CoachExists:
            print(f"livecoach: there is a coach {args.email} already", file=sys.stderr)
            return 1
    finally:
        store.close()


def _new_session(args: argparse.Namespace) -> int:
    base = (args.url or env_default("url", "http://127.0.0.1:8080")).rstrip("/")
    from . import accounts

    store = open_store(args)
    try:
        try:
            owner = accounts.owner_of_new_session(store, args.coach)
        except accounts.AccountError as err:
            print(f"livecoach: {err}", file=sys.stderr)
            return 1
        new = store.create_session(args.label, coach_id=owner)
    finally:
        store.close()
    print(f"session   {new.id}")
    print(f"coach     {base}{new.coach_path()}")
    print(f"client    {base}{new.client_path()}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from . import report
    from .analyze import analyze_stereo, analyze_tracks

    try:
        result = analyze_stereo(args.stereo) if args.stereo else analyze_tracks(args.coach, args.client)
    except AudioError as err:
        print(f"livecoach: {err}", file=sys.stderr)
        return 1
    text = {"text": report.to_text, "json": report.to_json, "rttm": report.to_rttm}[args.format](result)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as err:
            print(f"livecoach: cannot write {args.output}: {err.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
