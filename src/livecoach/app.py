"""The web server: pages, the session API, and the live websockets (Starlette on uvicorn)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .coach_api import coach_routes
from .live.call import Calls
from .live.ice import restrict_host_addresses
from .live.signalling import serve_indicators, serve_signalling
from .settings import Settings
from .store import Store
from .workers import WorkerPool

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parents[2] / "web"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
        "img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}


def create_app(settings: Settings, pool: WorkerPool | None = None) -> Starlette:
    """The whole server; with a worker ``pool`` the calls run there and this process routes to them."""
    store = Store(settings.database)
    calls = None if pool else Calls(settings, store)
    restrict_host_addresses(settings.ice_addresses)

    def page(name: str):
        async def endpoint(request: Request) -> Response:
            return FileResponse(WEB / name, headers=SECURITY_HEADERS | {"Cache-Control": "no-store"})

        return endpoint

    async def new_session(request: Request) -> Response:
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        label = body.get("label", "") if isinstance(body, dict) else ""
        if not isinstance(label, str):
            return JSONResponse({"error": "'label' must be a string"}, status_code=400)
        new = store.create_session(label)
        return JSONResponse(
            {"session": new.id, "coach_url": new.coach_path(), "client_url": new.client_path()}, status_code=201
        )

    async def health(request: Request) -> Response:
        if pool:
            report = await pool.health()
            return JSONResponse(report, status_code=200 if report["ok"] else 503)
        return JSONResponse({"ok": True, "calls": len(calls), "peers": calls.peer_count()})

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
        if pool:
            pool.start()
        yield
        if pool:
            await pool.stop()
        else:
            await calls.close()
        store.close()

    app = Starlette(
        routes=[
            Route("/", page("index.html")),
            Route("/s/{session}/coach", page("coach.html")),
            Route("/s/{session}/join", page("client.html")),
            Route("/s/{session}/sidebar", page("sidebar.html")),
            Route("/api/sessions", new_session, methods=["POST"]),
            *coach_routes(store),
            Route("/healthz", health),
            WebSocketRoute("/ws/signal", signal),
            WebSocketRoute("/ws/indicators", indicators),
            Mount("/static", StaticFiles(directory=WEB, check_dir=False), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.calls = calls
    app.state.settings = settings
    return app


def serve(settings: Settings) -> None:
    import uvicorn

    settings.data.mkdir(parents=True, exist_ok=True)
    pool = WorkerPool(settings, settings.workers) if settings.workers > 0 else None
    app = create_app(settings, pool)
    calls_run = f"{settings.workers} worker processes" if pool else "this process"
    print(f"livecoach is serving at {settings.base_url()}/  (data in {settings.data.resolve()}; calls in {calls_run})",
          flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        ws_max_size=1 << 20,
        log_level="warning",
    )
