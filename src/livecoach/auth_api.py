"""Coaches logging in and out, changing their password, and the first run (docs/security.md).

A login is a random token in an HttpOnly, SameSite=Lax cookie (Secure on https), stored as its
SHA-256 digest (store.coach_logins): unguessable like a signed value, and unlike one it can be
ended on the server (logout, a password change ends the coach's other logins). The first run
(no coach yet) asks for the setup code the server printed when it started, so that whoever
reaches a new server first cannot make themselves its coach.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import accounts
from .coach_api import ApiError, answering_errors, bad, error_response, json_response, read_object
from .logins import clear_login_cookie, logged_in_coach, login_token, set_login_cookie
from .store import Coach, CoachExists, Store

log = logging.getLogger(__name__)


def setup_code(data: Path, store: Store) -> str | None:
    """The first run's code while there is no coach (made once, kept in ``<data>/setup-code``,
    readable by the server's user only), else None (and the file is gone)."""
    path = data / "setup-code"
    if store.coach_count() > 0:
        path.unlink(missing_ok=True)
        return None
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        code = secrets.token_urlsafe(12)
        path.touch(mode=0o600)
        path.write_text(code + "\n")
        return code


def auth_routes(store: Store, data: Path) -> list[Route]:
    api = _AuthApi(store, data)
    return [
        Route("/api/login", api.wrap(api.login), methods=["POST"]),
        Route("/api/logout", api.wrap(api.logout), methods=["POST"]),
        Route("/api/me", api.wrap(api.me), methods=["GET"]),
        Route("/api/password", api.wrap(api.password), methods=["POST"]),
        Route("/api/setup", api.wrap(api.setup_state), methods=["GET"]),
        Route("/api/setup", api.wrap(api.setup), methods=["POST"]),
    ]


class _AuthApi:
    def __init__(self, store: Store, data: Path) -> None:
        self.store = store
        self.data = data
        self.limiter = accounts.LoginLimiter()

    @staticmethod
    def wrap(handler):
        async def accounts_checked(request: Request) -> Response:
            try:
                return await handler(request)
            except accounts.AccountError as err:
                raise bad(str(err)) from None

        return answering_errors(accounts_checked)

    async def login(self, request: Request) -> Response:
        body = await read_object(request)
        email, password = _text(body, "email"), _text(body, "password")
        address = request.client.host if request.client else "?"
        wait = self.limiter.wait_s(email, address)
        if wait > 0:
            response = error_response(ApiError(429, "too-many-attempts",
                                               f"too many failed logins: try again in {int(wait) + 1} s"))
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        coach = await run_in_threadpool(accounts.verify_login, self.store, email, password)
        if coach is None:
            self.limiter.failed(email, address)
            log.warning("failed login for %r from %s", email[:100], address)
            raise ApiError(401, "bad-login", "this email and password do not match a coach")
        return await self._logged_in(request, coach)

    async def logout(self, request: Request) -> Response:
        token = login_token(request)
        if token:
            await run_in_threadpool(self.store.end_login, token)
        response = json_response({"ok": True})
        clear_login_cookie(response, request.url.scheme == "https")
        return response

    async def me(self, request: Request) -> Response:
        coach = await self._coach(request)
        return json_response({"coach": _public(coach)})

    async def password(self, request: Request) -> Response:
        coach = await self._coach(request)
        body = await read_object(request)
        current, new = _text(body, "current"), _text(body, "new")
        if not await run_in_threadpool(accounts.verify_password, self.store, coach.id, current):
            raise ApiError(403, "bad-password", "the current password is not right")
        hashed = await run_in_threadpool(accounts.hash_password, new)
        await run_in_threadpool(self.store.set_password, coach.id, hashed, login_token(request))
        return json_response({"ok": True})

    async def setup_state(self, request: Request) -> Response:
        needed = await run_in_threadpool(self.store.coach_count) == 0
        return json_response({"needed": needed})

    async def setup(self, request: Request) -> Response:
        body = await read_object(request)
        code = await run_in_threadpool(setup_code, self.data, self.store)
        if code is None:
            raise ApiError(409, "set-up", "this server has a coach already: log in")
        if not hmac.compare_digest(_text(body, "code").strip().encode(), code.encode()):
            raise ApiError(403, "bad-code", "the setup code is not right (the server printed it when it started)")
        try:
            coach = await run_in_threadpool(accounts.add_coach, self.store, _text(body, "email"),
                                            _text(body, "name"), _text(body, "password"), True)
        except CoachExists:
            raise ApiError(409, "set-up", "this server has a coach already: log in") from None
        await run_in_threadpool(setup_code, self.data, self.store)  # the code is spent
        return await self._logged_in(request, coach, status=201)

    async def _coach(self, request: Request) -> Coach:
        coach = await logged_in_coach(self.store, request)
        if coach is None:
            raise ApiError(401, "not-logged-in", "log in first")
        return coach

    async def _logged_in(self, request: Request, coach: Coach, status: int = 200) -> Response:
        token = await run_in_threadpool(self.store.add_login, coach.id)
        response = json_response({"coach": _public(coach)}, status)
        set_login_cookie(response, token, request.url.scheme == "https")
        return response


def _public(coach: Coach) -> dict:
    return {"id": coach.id, "email": coach.email, "name": coach.name}


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise bad(f"'{key}' must be a string")
    return value
