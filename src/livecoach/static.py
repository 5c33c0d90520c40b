"""The web pages and their files (``web/``), served from memory.

A page loads 20–30 small ES modules at once; starlette's StaticFiles opens, stats and streams
each in a worker thread, about 2.5 ms a file of the server's time on this machine, while the
browser is busy with the same page on the same cores. Here each file is read once, kept with its
gzipped form and an ETag, and answered in one message (about 0.5 ms); a file changed on disk is
read again (its modification time and size are checked on every request, so an edited checkout
is served as it is now). Browsers revalidate (``no-cache``) and get 304 when nothing changed.

The pages themselves go out with the security headers, never cached. Their Content-Security-
Policy allows scripts from this server only, and the inline scripts of the page by their
SHA-256 (a page's first request can then go out while its modules still load: review.html).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

COMPRESSIBLE = {".js", ".css", ".html", ".svg", ".json", ".txt", ".map"}
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
MAX_KEPT_BYTES = 4 * 1024 * 1024
"""A file larger than this is not one of the pages' files: it is read for each request."""


@dataclass(frozen=True)
class _File:
    stamp: tuple[int, int]  # (mtime_ns, size) when read
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str
    script_hashes: tuple[str, ...]  # of an HTML page's inline scripts, as CSP sources


def security_headers(script_hashes: tuple[str, ...] = ()) -> dict[str, str]:
    """A page's security headers; ``script_hashes`` are its inline scripts' CSP sources."""
    scripts = " ".join(("'self'", *script_hashes))
    return {
        "Content-Security-Policy": (
            "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
            f"img-src 'self' data: blob:; style-src 'self'; script-src {scripts}; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Permissions-Policy": "camera=(self), microphone=(self)",
    }


class StaticFiles:
    """An ASGI app serving the files under ``folder`` (GET and HEAD; never a path outside it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._files: dict[str, _File] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["method"] not in ("GET", "HEAD"):
            return await _send(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
        found = self._file(_route_path(scope))
        if found is None:
            return await _send(send, 404, b"not found\n", [])
        headers = [(b"etag", found.etag.encode()), (b"cache-control", b"no-cache"),
                   (b"x-content-type-options", b"nosniff"), (b"vary", b"Accept-Encoding")]
        request_headers = dict(scope["headers"])
        if found.etag in request_headers.get(b"if-none-match", b"").decode("latin-1"):
            return await _send(send, 304, b"", headers, head=True)
        body = found.body
        if found.gzipped is not None and b"gzip" in request_headers.get(b"accept-encoding", b""):
            body = found.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-type", found.media_type.encode()))
        await _send(send, 200, body, headers, head=scope["method"] == "HEAD")

    def warm(self) -> int:
        """Read and gzip every file now, so that the first browser to load a page does not wait
        for it (a page's 30 files at gzip level 9: tens of ms of the server's time). Returns how
        many files are kept."""
        for path in self.folder.rglob("*"):
            if path.is_file():
                self._file(str(path.relative_to(self.folder)))
        return len(self._files)

    def page(self, name: str):
        """An endpoint answering the page ``name`` (an HTML file in the folder) with its headers."""
        async def endpoint(request: Request) -> Response:
            found = self._file(name)
            if found is None:
                return Response("this page is missing from the server's files\n", status_code=500,
                                media_type="text/plain")
            headers = security_headers(found.script_hashes) | {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
            body = found.body
            if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
                body = found.gzipped
                headers["Content-Encoding"] = "gzip"
            return Response(body, media_type=found.media_type, headers=headers)

        return endpoint

    def _file(self, relative: str) -> _File | None:
        try:
            path = (self.folder / relative.lstrip("/")).resolve()
            if not path.is_relative_to(self.folder) or not path.is_file():
                return None
            stat = path.stat()
        except (OSError, ValueError):  # ValueError: a NUL in the path
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        key = str(path)
        kept = self._files.get(key)
        if kept is not None and kept.stamp == stamp:
            return kept
        try:
            body = path.read_bytes()
        except OSError:
            return None
        suffix = path.suffix.lower()
        media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in COMPRESSIBLE and len(body) > 512 else None
        scripts = tuple(f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                        for m in INLINE_SCRIPT.findall(body)) if suffix == ".html" else ()
        found = _File(stamp, body, gzipped, f'"{hashlib.sha256(body).hexdigest()[:20]}"', media_type, scripts)
        if len(body) <= MAX_KEPT_BYTES:
            self._files[key] = found
        return found


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], head: bool = False) -> None:
    if status >= 400:
        headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})



def _route_path(scope: Scope) -> str:
    """The path below the mount point ("/static/js/a.js" mounted at "/static": "/js/a.js")."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
