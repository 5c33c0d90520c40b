"""A throwaway PostgreSQL server for the tests: started once per test session in a temporary
folder, listening on 127.0.0.1 only (and a unix socket in that folder), with fsync off, and
removed at the end. Each test gets a database of its own (``Server.new_database``), empty or a
copy of a template.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user
(Debian's postgresql package makes it); its binaries are found on the PATH or in Debian's
/usr/lib/postgresql/<version>/bin.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from ports import free_port

SUPERUSER = "postgres"


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why (the reason a test skips with)."""


def binaries() -> Path:
    """The folder with initdb and pg_ctl: the PATH's, else the newest of Debian's."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                    if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    raise Unavailable("PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)")


@dataclass
class Server:
    folder: Path
    port: int
    bin: Path
    as_user: list[str]
    _names: count = field(default_factory=lambda: count(1))
    _admin: object = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, template: str | None = None) -> str:
        """A new database, empty or (``template``: the URL of one ``make_template`` made) a copy of
        another; its URL."""
        name = f"test_{next(self._names)}"
        copied = f" TEMPLATE {template.rsplit('/', 1)[1]}" if template else ""
        self.admin().execute(f"CREATE DATABASE {name}{copied}")
        return self.url(name)

    def make_template(self, url: str) -> None:
        """Make a database (one nobody is connected to any more) a template for ``new_database``:
        connections to it are refused from now on, as PostgreSQL copies a database only while
        nobody is connected to it."""
        name = url.rsplit("/", 1)[1]
        self.admin().execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true")

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def admin(self):
        """A connection to the server's own database, in autocommit (CREATE DATABASE needs it)."""
        if self._admin is None:
            import psycopg

            self._admin = psycopg.connect(self.url(), autocommit=True)
        return self._admin

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
                        "-m", "immediate", "-w"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """Initialise and start a server in a new temporary folder (a few seconds), or Unavailable."""
    if importlib.util.find_spec("psycopg") is None:
        raise Unavailable("psycopg is not installed (pip install 'livecoach[postgresql]')")
    bin = binaries()
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="livecoach-pg-"))  # not pytest's tmp: its parents are root's alone
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(folder)
            raise Unavailable("running as root needs the postgres user and runuser to start PostgreSQL")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c shared_buffers=16MB")
    steps = [
        [str(bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
         "--no-sync", "--no-instructions"],
        [str(bin / "pg_ctl"), "start", "-D", str(data), "-l", str(folder / "log"), "-w", "-o", options],
    ]
    for step in steps:
        done = subprocess.run([*as_user, *step], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            log = folder / "log"
            detail = (done.stderr or done.stdout).strip() + (f"\n{log.read_text()}" if log.exists() else "")
            shutil.rmtree(folder, ignore_errors=True)
            raise Unavailable(f"{Path(step[0]).name} failed: {detail}")
    return Server(folder, port, bin, as_user)
