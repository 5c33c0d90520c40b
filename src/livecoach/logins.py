"""Which coach a request comes from: the login cookie (auth_api.py sets it; docs/security.md)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response

from .store import LOGIN_IDLE_S, Coach, Store

COOKIE = "livecoach_login"


def login_token(conn: HTTPConnection) -> str | None:
    token = conn.cookies.get(COOKIE)
    return token if token and len(token) <= 100 else None


async def logged_in_coach(store: Store, conn: HTTPConnection) -> Coach | None:
    """The coach whose login cookie the request (or websocket) carries, if that login is on."""
    token = login_token(conn)
    return await run_in_threadpool(store.coach_for_login, token) if token else None


def set_login_cookie(response: Response, token: str, secure: bool) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no other site's request carries it but a
    plain link), Secure on https."""
    response.set_cookie(COOKIE, token, max_age=int(LOGIN_IDLE_S), path="/", httponly=True, samesite="lax",
                        secure=secure)


def clear_login_cookie(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
