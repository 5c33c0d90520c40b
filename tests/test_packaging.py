"""An installed wheel serves its pages: every file of web/ and every migration is in the wheel,
and the server finds the pages where the wheel installs them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from livecoach.app import web_folder

ROOT = Path(__file__).resolve().parents[1]
WEB_FILES = ("*.html", "css/*.css", "js/*.js", "js/*/*.js")


def test_the_wheel_holds_the_pages_and_the_migrations(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("livecoach-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {p.relative_to(ROOT / "web").as_posix() for pattern in WEB_FILES for p in (ROOT / "web").glob(pattern)}
    assert "review.html" in pages and "js/review/main.js" in pages
    shipped = {n.split("/share/livecoach/web/", 1)[1] for n in names if "/share/livecoach/web/" in n}
    assert shipped == pages
    migrations = {p.name for p in (ROOT / "src/livecoach/store/migrations/versions").glob("*.py")}
    assert {n.rsplit("/", 1)[1] for n in names if "/migrations/versions/" in n} == migrations
    assert "livecoach/store/migrations/env.py" in names


def test_an_installed_package_serves_the_pages_from_where_the_wheel_put_them(tmp_path):
    package = tmp_path / "lib" / "python3" / "site-packages" / "livecoach"
    package.mkdir(parents=True)
    assert web_folder(package, tmp_path) == tmp_path / "share" / "livecoach" / "web"
    assert web_folder() == ROOT / "web"  # this checkout, as in development
