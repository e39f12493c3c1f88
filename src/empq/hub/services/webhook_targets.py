"""Which webhook targets count as loopback or private (`EMPQ_WEBHOOK_DENY_PRIVATE`).

With the setting on, a registration whose host is, or resolves to, a loopback,
private, link-local, unspecified or multicast address (IPv4-mapped IPv6 included) is
refused, and so is one whose host does not resolve; each delivery checks again, since
a name may resolve elsewhere later. Off by default: a hub and its receivers often
share a private network, and there the check would refuse every target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


def is_private(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower().rstrip(".") in ("localhost", "localhost.localdomain")
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    if mapped is not None:
        ip = mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_unspecified
        or ip.is_multicast
    )


async def resolves_private(url: str) -> bool:
    """Whether the URL's host is, or resolves to, a loopback/private address."""
    host = urlsplit(url).hostname or ""
    if is_private(host):
        return True
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(is_private(str(info[4][0])) for info in infos)


async def target_refused(url: str) -> bool:
    """At registration, with private targets denied: a private target, or a host that
    does not resolve (so cannot be checked)."""
    host = urlsplit(url).hostname or ""
    try:
        await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return not _is_ip(host)
    return await resolves_private(url)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
