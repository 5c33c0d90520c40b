"""Coach accounts: passwords, and how often a login may be tried (docs/security.md).

Passwords are hashed with argon2id (argon2-cffi, its RFC 9106 low-memory profile: 64 MiB,
3 passes), a memory-hard KDF, so a stolen database costs an attacker a great deal per guess.
The hash is checked in a worker thread (about 0.15 s of CPU). Login attempts are limited per
email and per address, so guessing over the network is slow too.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .store import LOCAL_COACH, Coach, Store

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_NAME = 100
MAX_EMAIL = 254
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """What an unknown email's password is checked against, so that an answer's time does not say
    whether the email is known; made at the first login rather than at import (a third of a
    second of every start)."""
    return _hasher.hash("a password nobody has")


class AccountError(ValueError):
    """A value a coach gave is not acceptable; the message says why, for the coach."""


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
        raise AccountError("enter an email address like name@example.com")
    return email


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise AccountError(f"a name of 1 to {MAX_NAME} characters is needed")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def add_coach(store: Store, email: str, name: str, password: str, only_first: bool = False) -> Coach:
    """A new coach (raises AccountError for a bad value, store.CoachExists for a taken email, or
    with ``only_first`` when there is a coach already)."""
    return store.add_coach(normal_email(email), check_name(name), hash_password(password), only_first)


def verify_login(store: Store, email: str, password: str) -> Coach | None:
    """The coach if the email and password match, else None (in about the same time)."""
    dummy = _dummy_hash()  # for every login, so that only the first of all, known or not, makes it
    try:
        found = store.coach_login_details(normal_email(email))
    except AccountError:
        found = None
    try:
        _hasher.verify(found[1] if found else dummy, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return found[0] if found else None


def owner_of_new_session(store: Store, email: str | None, option: str = "--coach") -> str:
    """The coach a session made from the command line belongs to: the one named by ``email``, or
    the only coach (the local coach while there is none). Raises AccountError when there is no
    such coach, or several and none is named (with ``option``, the command's way to name one)."""
    coaches = store.coaches()
    if email:
        wanted = normal_email(email)
        chosen = [c for c in coaches if c.email == wanted]
        if not chosen:
            raise AccountError(f"there is no coach {email}")
        return chosen[0].id
    if len(coaches) > 1:
        raise AccountError(f"there are several coaches: say whose session it is with {option} EMAIL")
    return coaches[0].id if coaches else LOCAL_COACH


def verify_password(store: Store, coach_id: str, password: str) -> bool:
    stored = store.password_hash(coach_id)
    try:
        return stored is not None and _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class LoginLimiter:
    """At most ``attempts`` failed logins per ``window_s`` for one email, and ``per_address``
    for one client address; over that, logins are refused until the oldest failure ages out."""

    attempts: int = 5
    per_address: int = 20
    window_s: float = 15 * 60
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait_s(self, email: str, address: str) -> float:
        """0 if a login may be tried now, else the seconds until it may."""
        now = time.monotonic()
        waits = [self._wait(f"email:{email.strip().lower()}", self.attempts, now),
                 self._wait(f"address:{address}", self.per_address, now)]
        return max(waits)

    def failed(self, email: str, address: str) -> None:
        now = time.monotonic()
        for key in (f"email:{email.strip().lower()}", f"address:{address}"):
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # a flood of made-up emails: forget the oldest half
            for key in list(self._failures)[:50_000]:
                del self._failures[key]

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        return 0.0 if len(failures) < limit else failures[0] + self.window_s - now
