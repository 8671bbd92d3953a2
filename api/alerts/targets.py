"""Where webhooks may go: public addresses only, unless the operator allows private ones
(``TRACE_INSIGHTS_WEBHOOK_ALLOW_PRIVATE``). A rule's URL is checked when it is written, and the
address a delivery connects to is checked when it connects: the name is resolved, every
address checked, and the connection made to the address checked (a name that resolves to an
internal address later cannot slip in between). Redirects are not followed.
"""

import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def refused(address: IpAddress) -> str | None:
    """Why a delivery may not connect to ``address``; None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for test, what in (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local (cloud metadata)"),
        (address.is_private, "private"),
        (address.is_multicast, "multicast"),
        (address.is_reserved or address.is_unspecified, "reserved"),
    ):
        if test:
            return f"{address} is a {what} address"
    return None


def check_url(url: str, allow_private: bool) -> None:
    """Raises ValueError naming what is wrong with a webhook URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError(f"{url!r}: {host} is a loopback address; {_HOW}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when a delivery resolves it
    why = refused(address)
    if why is not None:
        raise ValueError(f"{url!r}: {why}; {_HOW}")


_HOW = "set TRACE_INSIGHTS_WEBHOOK_ALLOW_PRIVATE=true to allow internal targets"


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses ``refused`` lets through, and to the one it checked."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        for address in addresses:
            why = refused(address)
            if why is not None:
                raise httpcore.ConnectError(f"{host} resolves to {why}; {_HOW}")
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)


def client(allow_private: bool) -> httpx.Client:
    """The HTTP client of webhook deliveries."""
    if allow_private:
        return httpx.Client(follow_redirects=False)
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(  # httpx's own pool, with the guarded backend
        ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend()
    )
    return httpx.Client(transport=transport, follow_redirects=False)
