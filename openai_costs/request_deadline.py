"""A request's deadline, kept by every connection httpx opens for it.

httpx bounds each socket operation, never a whole request: an answer that trickles in a
byte at a time would never time out. :func:`keep_to_deadline` gives a client's connection
pools a network backend whose every connect, read and write ends by the request's
:class:`Deadline`. It subclasses httpcore's types, so it is imported with the first client
(:mod:`openai_costs.safe_http`), not at start-up.
"""

from __future__ import annotations

import ssl
import time
import typing
from typing import TYPE_CHECKING

import httpcore

if TYPE_CHECKING:
    import httpx

__all__ = ["Deadline", "keep_to_deadline"]


class Deadline:
    """When the request in progress must be over by (``time.monotonic``), shared with the
    network streams of one client; None between requests."""

    def __init__(self) -> None:
        self.at: float | None = None

    def start(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def clear(self) -> None:
        self.at = None

    def clamp(self, timeout: float | None, error: type[Exception]) -> float | None:
        """The timeout for one socket operation: never past the deadline."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the request's deadline has passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        limit = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        inner = self._inner.start_tls(ssl_context, server_hostname, limit)
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens connections that keep to the client's :class:`Deadline`."""

    def __init__(self, inner: httpcore.NetworkBackend, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        limit = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, limit, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        limit = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_unix_socket(path, limit, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def keep_to_deadline(client: httpx.Client, deadline: Deadline) -> bool:
    """Make every connection ``client`` opens (proxies from the environment included) keep
    to ``deadline``. httpx bounds each socket operation only, so this reaches into its
    connection pools; False if the default transport could not be reached (then a test
    fails rather than a deadline silently not holding)."""
    transports = [client._transport, *client._mounts.values()]
    wrapped = False
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend):
            if not isinstance(backend, _DeadlineBackend):
                pool._network_backend = _DeadlineBackend(backend, deadline)  # type: ignore[union-attr]
            wrapped = wrapped or transport is client._transport
    return wrapped
