"""The shape of an `EMPQ_REDIS_URL`, checked when settings are read.

A malformed URL is a settings error naming `EMPQ_REDIS_URL` (one line from the
command), not a traceback from deep inside the first connection attempt. Only the
shape is checked here; whether Redis answers is found out by connecting.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: Schemes `empq.redis_client` connects with.
SCHEMES = frozenset(
    {
        "redis",
        "rediss",
        "unix",
        "redis+cluster",
        "rediss+cluster",
        "redis+sentinel",
        "rediss+sentinel",
    }
)


def _check_host(hostport: str) -> None:
    if hostport.startswith("["):  # [IPv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise ValueError("host missing")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"port '{port[:20]}' is not a number from 1 to 65535")


def check_redis_url(url: str) -> None:
    """ValueError saying what is wrong with the URL's shape (the password never quoted)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must look like redis://host:6379/0")
    if scheme not in SCHEMES:
        names = ", ".join(sorted(f"{s}://" for s in SCHEMES))
        raise ValueError(f"unknown scheme '{scheme[:20]}://' (use one of {names})")
    if scheme == "unix":
        if not urlsplit(url).path:
            raise ValueError("a unix:// URL needs a socket path")
        return
    netloc, _, path = rest.partition("?")[0].partition("/")
    hosts = netloc.rpartition("@")[2]
    if not hosts:
        raise ValueError("host missing")
    for hostport in hosts.split(",") if scheme.endswith("+sentinel") else [hosts]:
        _check_host(hostport)
    parts = [p for p in path.split("/") if p]
    if scheme.endswith("+sentinel"):
        if not parts:
            raise ValueError("a sentinel URL needs the service name: .../SERVICE_NAME[/db]")
        parts = parts[1:]
    db = parts[0] if parts else ""
    if db and not db.isdigit():
        raise ValueError(f"database '{db[:20]}' is not a number")
