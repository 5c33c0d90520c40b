"""Coaches logging in and out, changing their password, and the first run (docs/security.md).

A login is a random token in an HttpOnly, SameSite=Lax cookie (Secure on https), stored as its
SHA-256 digest (store.coach_logins): unguessable like a signed value, and unlike one it can be
ended on the server (logout, a password change ends the coach's other logins). The first run
(no coach yet) asks for the setup code the server printed when it started, so that whoever
reaches a new server first cannot make themselves its coach. With several nodes (nodes.py) each
prints its own code, and any node accepts any of them: their digests are kept in the database.
"""

from __future__ import annotations

import hashlib
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


def setup_code(data: Path, store: Store, node_id: str | None = None) -> str | None:
    """The first run's code while there is no coach (made once, kept in ``<data>/setup-code``,
    readable by the server's user only), else None (and the file is gone). ``node_id``: this
    server is that node of several, and the code's digest is kept in the database too, for every
    node to accept it (gone from there too once there is a coach)."""
    path = data / "setup-code"
    if store.coach_count() > 0:
        path.unlink(missing_ok=True)
        if node_id is not None:
            store.forget_setup_codes()
        return None
    try:
        code = path.read_text().strip()
    except FileNotFoundError:
        code = secrets.token_urlsafe(12)
        path.touch(mode=0o600)
        path.write_text(code + "\n")
    if node_id is not None:
        store.keep_setup_code(node_id, _code_digest(code))
    return code


def _code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def auth_routes(store: Store, data: Path, node_id: str | None = None) -> list[Route]:
    """``node_id``: this server is that node of several (``setup_code``)."""
    api = _AuthApi(store, data, node_id)
    return [
        Route("/api/login", api.wrap(api.login), methods=["POST"]),
        Route("/api/logout", api.wrap(api.logout), methods=["POST"]),
        Route("/api/me", api.wrap(api.me), methods=["GET"]),
        Route("/api/password", api.wrap(api.password), methods=["POST"]),
        Route("/api/setup", api.wrap(api.setup_state), methods=["GET"]),
        Route("/api/setup", api.wrap(api.setup), methods=["POST"]),
    ]


class _AuthApi:
    def __init__(self, store: Store, data: Path, node_id: str | None = None) -> None:
        self.store = store
        self.data = data
        self.node_id = node_id
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
        code = await run_in_threadpool(setup_code, self.data, self.store, self.node_id)
        if code is None:
            raise ApiError(409, "set-up", "this server has a coach already: log in")
        given = _text(body, "code").strip()
        accepted = hmac.compare_digest(given.encode(), code.encode())
        if not accepted and self.node_id is not None:  # another node's code
            digests = await run_in_threadpool(self.store.setup_code_digests)
            accepted = any([hmac.compare_digest(_code_digest(given), digest) for digest in digests])
        if not accepted:
            raise ApiError(403, "bad-code", "the setup code is not right (the server printed it when it started)")
        try:
            coach = await run_in_threadpool(accounts.add_coach, self.store, _text(body, "email"),
                                            _text(body, "name"), _text(body, "password"), True)
        except CoachExists:
            raise ApiError(409, "set-up", "this server has a coach already: log in") from None
        await run_in_threadpool(setup_code, self.data, self.store, self.node_id)  # the code is spent
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
