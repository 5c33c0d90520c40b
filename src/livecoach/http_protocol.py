"""uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers.

uvicorn closes a keep-alive connection that stays idle after a response, but it waits forever
for the headers of a request that has begun, and for the first bytes of a new connection: a
client that opens connections and sends a header line now and then holds each one open for good
(a "slowloris"). Here a connection that has not delivered a whole request head within
``header_timeout_s`` (``Settings.header_timeout_s``, set by ``with_header_timeout``) of being
opened, or of its previous response, is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import Settings


class TimedH11Protocol(H11Protocol):
    header_timeout_s = Settings.header_timeout_s
    _header_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_header_timeout(cls, seconds: float) -> type[TimedH11Protocol]:
        """The protocol class for uvicorn (which makes one per connection) with this deadline."""
        return type(cls.__name__, (cls,), {"header_timeout_s": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        scope = self.scope
        super().handle_events()
        if self.scope is not scope:
            self._disarm()  # a request's head arrived (a new scope): the app, or a websocket, has it now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()
