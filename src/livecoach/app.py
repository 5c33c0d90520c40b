"""The web server: pages, the session API, and the live websockets (Starlette on uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import consent, diagnostics, heap
from .auth_api import auth_routes, setup_code
from .coach_api import bearer_token, coach_routes
from .exports_api import export_routes
from .guards import Guards
from .http_protocol import TimedH11Protocol
from .import_api import IMPORT_FILE_PATH, MAX_IMPORT_FILE, import_routes
from .library_api import REPORT_TEXT_MAX_BODY, REPORT_TEXT_PATH, library_routes
from .live.call import Calls
from .live.ice import restrict_host_addresses, restrict_udp_ports
from .live.signalling import serve_indicators, serve_signalling
from .logins import logged_in_coach
from .node_routing import NodePrefix, NodeRouting
from .nodes import Node
from .recordings.finalise import sweep
from .recordings.uploads import MAX_CHUNK
from .retention import purge
from .review_api import review_routes
from .sessions_api import session_routes
from .settings import Settings
from .signing import Signer, installation_secret, shared_secret
from .static import StaticFiles
from .store import Store
from .upload_api import UPLOAD_PATH, upload_routes
from .workers import WorkerPool

log = logging.getLogger(__name__)


def web_folder(package: Path = Path(__file__).resolve().parent, prefix: Path = Path(sys.prefix)) -> Path:
    """The pages: the checkout's web/ beside src/ (a development install), else the copy an
    installed wheel puts under <prefix>/share/livecoach/web (pyproject.toml, data-files)."""
    checkout = package.parents[1] / "web"
    return checkout if (checkout / "index.html").is_file() else prefix / "share" / "livecoach" / "web"


WEB = web_folder()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SWEEP_SECONDS = 5.0
"""How often the server looks for recordings whose writer died."""
PURGE_SECONDS = 3600.0
"""How often it deletes what is past its retention."""


def create_app(settings: Settings, pool: WorkerPool | None = None, worker: bool = False) -> Starlette:
    """The whole server; with a worker ``pool`` the calls run there and this process routes to them.
    A ``worker`` serves calls only: the front (or a server without workers) does the upkeep."""
    store = Store(settings.database, invite_ttl_s=settings.invite_hours * 3600)
    calls = None if pool else Calls(settings, store)
    node = Node(store, settings.node_id, settings.node_url) if settings.node_url and not worker else None
    storage = settings.recordings_storage()
    # Several nodes sign and check the media links with one secret, and take any node's setup code:
    # both in the database they share. A single server keeps them in its data folder.
    signer = Signer(shared_secret(store, settings.data) if settings.node_url else installation_secret(settings.data))
    shared_id = settings.cluster_node_id
    restrict_host_addresses(settings.ice_addresses)
    restrict_udp_ports(settings.udp_ports)
    files = StaticFiles(WEB)
    if not worker:
        files.warm()  # the pages' files are served by the front only
    page = files.page

    async def notice(request: Request) -> Response:
        """The notice a participant agrees to for this session (either token of the session)."""
        session = request.path_params["session"]
        token = bearer_token(request)
        role = await run_in_threadpool(store.role_for, session, token) if token else None
        if role is None:
            return JSONResponse({"error": {"code": "bad-token", "message": "this link is not valid"}}, status_code=401)
        stored = await run_in_threadpool(store.get_session, session)
        scopes = consent.session_scopes(stored.video_recording, settings.recording)
        text = consent.notice(scopes)
        return JSONResponse({"notice": text, "scopes": scopes, "version": consent.version(text)},
                            headers={"Cache-Control": "no-store"})

    async def sweep_recordings() -> None:
        """Finish what killed processes left behind, now and every few seconds; delete what is
        past its retention, now and every hour (of several nodes, the one whose turn it is)."""
        purged_at = float("-inf")
        while True:
            try:
                await run_in_threadpool(sweep, store, storage)
            except Exception:
                log.exception("the recordings sweep failed")
            if time.monotonic() - purged_at >= PURGE_SECONDS:
                purged_at = time.monotonic()
                try:
                    # a turn a minute short of the hour: the node that took the last one asks an
                    # hour later by its own clock, which the database's may not quite agree with
                    if node is None or await run_in_threadpool(store.take_turn, "purge", PURGE_SECONDS - 60):
                        await run_in_threadpool(purge, store, storage, settings.keep_recordings_days,
                                                settings.keep_sessions_days)
                except Exception:
                    log.exception("the retention purge failed")
                try:  # what the object store's writers and PyAV's spool left behind (recordings/objects.py)
                    await run_in_threadpool(storage.clean_up)
                except Exception:
                    log.exception("cleaning up the recordings' storage failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def health(request: Request) -> Response:
        """Up or down for anyone; the workers and their calls only for this machine or a coach."""
        if pool:
            report = await pool.health()
        else:
            report = {"ok": True, "calls": len(calls), "peers": calls.peer_count()}
        status = 200 if report["ok"] else 503
        local = request.client is not None and _loopback(request.client.host)
        if not local and await logged_in_coach(store, request) is None:
            report = {"ok": report["ok"]}
        elif node is not None:
            report["node"] = {"id": node.id, "state": node.state, "calls": len(node.calls)}
        return JSONResponse(report, status_code=status, headers={"Cache-Control": "no-store"})

    async def live(request: Request) -> Response:
        """Up or down, from what this process knows (its workers' processes run), asking none of
        them: the check a proxy makes every second (/healthz asks every worker, a request each)."""
        ok = pool.running if pool else True
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})

    async def signal(ws: WebSocket) -> None:
        if pool:
            await pool.proxy(ws, "/ws/signal", store)
        else:
            await serve_signalling(ws, store, calls)

    async def indicators(ws: WebSocket) -> None:
        if pool:
            await pool.proxy(ws, "/ws/indicators", store)
        else:
            await serve_indicators(ws, store, calls)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if node is not None:
            node.start()
        if pool:
            pool.start()
        sweeper = None if worker else asyncio.get_running_loop().create_task(sweep_recordings())
        yield
        if sweeper is not None:
            sweeper.cancel()
        if pool:
            await pool.stop()
        else:
            await calls.close()
        if node is not None:
            await node.stop()
        store.close()

    app = Starlette(
        routes=[
            Route("/", page("index.html")),
            Route("/s/{session}/coach", page("coach.html")),
            Route("/s/{session}/join", page("client.html")),
            Route("/s/{session}/sidebar", page("sidebar.html")),
            Route("/s/{session}/review", page("review.html")),
            Route("/s/{session}/report", page("report.html")),
            Route("/library", page("library.html")),
            Route("/login", page("login.html")),
            Route("/setup", page("setup.html")),
            *auth_routes(store, settings.data, shared_id),
            *session_routes(store, storage, settings, node),
            Route("/api/sessions/{session}/notice", notice, methods=["GET"]),
            *coach_routes(store),
            *review_routes(store, storage, signer),
            *upload_routes(store, storage),
            *library_routes(store, WEB),
            *export_routes(store),
            *import_routes(store, storage, settings),
            Route("/healthz", health),
            Route("/livez", live),
            WebSocketRoute("/ws/signal", signal),
            WebSocketRoute("/ws/indicators", indicators),
            Mount("/static", files, name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Guards, body_limits=[(UPLOAD_PATH, MAX_CHUNK + 1024),
                                                    (REPORT_TEXT_PATH, REPORT_TEXT_MAX_BODY),
                                                    (IMPORT_FILE_PATH, MAX_IMPORT_FILE)],
                               allowed_origins=settings.allowed_origins)],
    )
    if node is not None:  # outermost the prefix, then the guards, then the session's owner (node_routing.py)
        app.user_middleware = [Middleware(NodePrefix), *app.user_middleware, Middleware(NodeRouting, node=node)]
    app.state.store = store
    app.state.calls = calls
    app.state.settings = settings
    app.state.node = node
    return app


def serve(settings: Settings) -> None:
    import uvicorn

    settings.data.mkdir(parents=True, exist_ok=True)
    heap.start()  # before any thread
    diagnostics.start_if_asked()
    pool = WorkerPool(settings, settings.workers) if settings.workers > 0 else None
    app = create_app(settings, pool)
    if app.state.node is not None:
        app.state.node.register()  # NodeIdTaken (another process runs as this node) ends it here
    calls_run = f"{settings.workers} worker processes" if pool else "this process"
    print(f"livecoach is serving at {settings.base_url()}/  (data in {settings.data.resolve()}; calls in {calls_run})",
          flush=True)
    code = setup_code(settings.data, app.state.store, settings.cluster_node_id)
    if code is not None:
        print(f"First run: no coach yet. Open {settings.base_url()}/setup#{code} to make the first coach account "
              f"(or run: livecoach coach add EMAIL --name NAME --data {settings.data}"
              f"{' --database URL' if settings.database_url else ''})", flush=True)
    options = dict(
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        ws_max_size=1 << 20,
        # No permessage-deflate: the messages are small JSON (a snapshot is about 1.5 KB, 4 a
        # second), and each compressed connection holds its own zlib state (about 300 KB, in the
        # C heap), which churning connections left behind as resident memory.
        ws_per_message_deflate=False,
        log_level="warning",
        loop="asyncio",  # live/ice.py's --udp-ports wraps asyncio's loop: uvloop, if installed, would bypass it
        http=TimedH11Protocol.with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=5,
    )
    if app.state.node is None:
        uvicorn.run(app, **options)
        return
    print(f"livecoach: node {settings.node_id} at {settings.node_url} (paths /n/{settings.node_id}/…); "
          "SIGTERM drains it", flush=True)
    server = _draining_server(uvicorn.Config(app, **options), app.state.node)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's own exit status when it could not start


def _draining_server(config, node: Node):
    """uvicorn's server, but the first SIGTERM drains the node (nodes.py) instead of stopping it:
    the server stops, with status 0, once the node's calls have ended. A second SIGTERM, or
    SIGINT (Ctrl-C), stops it at once, as uvicorn does."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            if sig == signal.SIGTERM and not self.should_exit and node.state != "draining":
                node.drain(then=self.drained)
                return
            super().handle_exit(sig, frame)

        def drained(self) -> None:
            self.should_exit = True

    return DrainingServer(config)
