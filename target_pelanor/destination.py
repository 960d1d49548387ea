"""Where a month goes: one integration at one Pelanor, whatever the URL's spelling.

The shrink guard remembers uploads per destination, so its memory must not depend on how
the settings spell the URL: ``/v1`` in ``api_url`` or in ``upload_path``, ``localhost`` or
``127.0.0.1``, ``HTTPS://API.pelanor.io:443/`` all reach the same Pelanor. A destination is
the Pelanor's host (lower case, no trailing dot, every loopback name as ``localhost``,
the port unless it is 443) and the integration's ID: ``api.pelanor.io/int-acme``,
``localhost:8765/int-acme``. The base URL's path is left out (it only moves ``/v1``
around); another host, port or integration is another destination.

Records written before destinations were noted name only the base URL they went to
(``endpoint``): such a record is taken to be of every integration at its host, and one
whose host cannot be told is taken to be of this destination (the guard fails closed).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

__all__ = ["Destination", "pelanor_host", "same_destination"]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def pelanor_host(url: str) -> str | None:
    """The Pelanor a URL reaches, as its host and port (``api.pelanor.io``,
    ``localhost:8765``, ``[2001:db8::1]:8443``); None if the URL names no host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            host = "localhost"
    else:
        mapped = getattr(address, "ipv4_mapped", None)
        if address.is_loopback or (mapped is not None and mapped.is_loopback):
            host = "localhost"
        elif address.version == 6:
            host = f"[{address.compressed}]"
    port = port or _DEFAULT_PORTS.get(parts.scheme.lower(), 443)
    return host if port == 443 else f"{host}:{port}"


@dataclass(frozen=True)
class Destination:
    """One integration at one Pelanor (``integration_id`` None: a dry run without one)."""

    host: str
    integration_id: str | None

    @property
    def text(self) -> str:
        """As records note it: ``api.pelanor.io/int-acme`` (the ID as one quoted segment)."""
        return f"{self.host}/{quote(self.integration_id or '', safe='')}"


def same_destination(
    noted: str | None, endpoint: str | None, destination: Destination | None
) -> bool:
    """Whether a record noting ``noted`` (a destination's text) and ``endpoint`` (the base
    URL) speaks of ``destination``; when unsure, it does (see the module docstring)."""
    if destination is None:
        return True
    if noted is not None:
        host, _, integration = noted.partition("/")
        return host == destination.host and (
            destination.integration_id is None or unquote(integration) == destination.integration_id
        )
    if endpoint is not None:
        reached = pelanor_host(endpoint)
        return reached is None or reached == destination.host
    return True
