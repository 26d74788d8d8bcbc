"""The service's connections, bounded before any request reaches the app: a client must send
its request's headers within ``header_timeout`` seconds of connecting (or of its previous
answer), and at most ``max_connections`` connections are open at once.

uvicorn closes an idle keep-alive connection, but one that trickles its headers a byte at a time
was never closed; the body has its own limit
(``upload_timeout``, :func:`escnet.serve.uploads.read_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["bounded_protocol"]

_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 35\r\n\r\nthe request headers came too slowly"
)
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"retry-after: 1\r\ncontent-length: 36\r\n\r\ntoo many connections; retry shortly"
)


class _BoundedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection bound."""

    header_timeout: float = 10.0
    max_connections: int = 100

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:  # this one included
            transport.write(_FULL)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        # The cycle changes when a request's headers are complete: if it has not by the
        # deadline, no request came in time.
        waiting_for = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._expire, waiting_for)

    def _expire(self, waiting_for: Any) -> None:
        # Still the same cycle and none in flight: no request's headers came (a pipelined
        # request that started before the deadline was armed is being answered: leave it).
        idle = self.cycle is None or self.cycle.response_complete
        if self.cycle is waiting_for and idle and not self.transport.is_closing():
            self.transport.write(_TIMEOUT)
            self.transport.close()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def bounded_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (``uvicorn.Config(http=...)``) with these two bounds."""
    return type(
        "BoundedProtocol",
        (_BoundedProtocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )
