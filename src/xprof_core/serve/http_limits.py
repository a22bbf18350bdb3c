"""Limits on the aggregator's HTTP connections: how many, and how long a request may take to arrive.

aiohttp has no limit on open connections and no timeout for a request's
headers: a client that opens thousands of connections and sends each request a
byte at a time (slowloris) holds them all. Two guards:

- :class:`ConnectionGate` counts open connections; past ``max_connections`` a
  new one is closed at once (before any byte is read), so the others keep
  their file descriptors and the server keeps answering;
- the request handlers' ``keepalive_timeout`` (set by the aggregator to
  ``--http_header_timeout``) closes a connection that has not delivered a
  complete request's headers that long after it opened or after its previous
  answer, whether it sent nothing or a byte at a time. (aiohttp arms that timer
  when the connection opens and after each response, and fires it only while
  no complete request is waiting; bytes of an incomplete request do not reset it.)

Request bodies are read by the handlers that take them, each under its own
timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["ConnectionGate", "GatedProtocol"]


class ConnectionGate:
    """A count of open connections with a ceiling."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.open = 0
        self.refused = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.open >= self.max_connections:
                self.refused += 1
                return False
            self.open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


class GatedProtocol(asyncio.Protocol):
    """Wraps the HTTP server's protocol for one connection, admitting it only through the gate."""

    def __init__(self, inner_factory: Callable[[], Any], gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: Any = None
        self._factory = inner_factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._gate.enter():
            if self._gate.refused in (1, 10, 100, 1000) or self._gate.refused % 10000 == 0:
                log.warning("%d connections open: refusing new ones (--max_connections)", self._gate.open)
            transport.close()
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._gate.leave()
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
