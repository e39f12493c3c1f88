"""A Redis connection's socket, read and written directly once redis-py has opened it.

redis-py makes the connection (of the client's own class and settings: TLS,
authentication, RESP version, client name); `RedisSocket` then becomes the
transport's protocol. Each reply is parsed by hiredis as its bytes arrive and handed
to the owner in the transport's own callback. redis-py's reading (a stream, a task
woken per reply, a timeout context per read) cost more than a tenth of a millisecond
per reply on this project's machine, on the path of every dispatch: the script
channel (`scripts.ScriptChannel`) and the event reader (`broker.events.EventReader`)
use this instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from empq.errors import DependencyChanged
from empq.redis_client import own_connection

#: What hiredis's reader answers when a reply is not complete yet.
_MORE = object()
#: RESP3 push messages (hiredis 3.2 and later parse them as their own type).
_PUSH: Any = getattr(hiredis, "PushNotification", ())


def pack(*args: Any) -> bytes:
    """One command in the Redis protocol (hiredis's C packer)."""
    return cast(bytes, hiredis.pack_command(args))


def settle(fut: asyncio.Future[Any], reply: Any) -> None:
    """Resolve `fut` with a reply (an exception instance: as its exception), if still open."""
    if fut.done():
        return
    if isinstance(reply, BaseException):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)


def _reply_error(message: str) -> ResponseError:
    """An error reply as redis-py raises it (NOSCRIPT as its own class)."""
    if message.startswith("NOSCRIPT "):
        return NoScriptError(message.removeprefix("NOSCRIPT "))
    return ResponseError(message)


def transport_of(conn: Any) -> asyncio.Transport:
    """The asyncio transport under a connected redis-py connection.

    redis-py keeps the socket as an asyncio stream pair in `_writer`, which is not its
    public API: if a release changes that, the hub and the broker refuse to start
    (`DependencyChanged`, raised by the first connection, which `Broker.connect` opens)
    instead of running without their script and event connections.
    """
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    # (uvloop's transports do not derive from asyncio's: what is used is checked.)
    if not all(hasattr(transport, a) for a in ("set_protocol", "get_protocol", "write")):
        raise DependencyChanged(
            f"redis-py {redis.__version__}: {type(conn).__name__} no longer exposes the "
            "asyncio transport empq's script and event connections read (its `_writer`); "
            "install a redis version this empq release supports"
        )
    return cast(asyncio.Transport, transport)


#: What an owner is told: a reply (an error reply as a `ResponseError` instance, not
#: raised), or the failure once the connection is gone.
OnReply = Callable[["RedisSocket", Any], None]
OnLost = Callable[["RedisSocket", Exception], None]


class RedisSocket(asyncio.Protocol):
    """The socket of one connected redis-py connection, spoken directly.

    `on_reply` gets each reply, `on_lost` the failure once the connection is gone (it
    is then closed), each with this socket; `on_resume` is called when a full send
    buffer has drained (`paused` is True meanwhile: the owner should hold further
    writes).
    """

    @classmethod
    async def open(
        cls,
        redis: Redis,
        role: str,
        on_reply: OnReply,
        on_lost: OnLost,
        on_resume: Callable[[], None] | None = None,
    ) -> RedisSocket:
        """A connection of `redis`'s settings outside its pool (`own_connection`,
        named for `role`), connected by redis-py, its socket spoken directly from then on.
        """
        conn = own_connection(redis, role)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            return cls(conn, on_reply, on_lost, on_resume)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            raise

    def __init__(
        self,
        conn: AbstractConnection,
        on_reply: OnReply,
        on_lost: OnLost,
        on_resume: Callable[[], None] | None = None,
    ) -> None:
        """Read and write connected `conn`'s socket from now on (redis-py no longer does)."""
        transport = transport_of(conn)
        self.conn = conn
        self.transport = transport
        self._on_reply, self._on_lost, self._on_resume = on_reply, on_lost, on_resume
        options: dict[str, Any] = {}
        if conn.encoder.decode_responses:
            options = {"encoding": conn.encoder.encoding, "errors": conn.encoder.encoding_errors}
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=_reply_error, notEnoughData=_MORE, **options
        )
        self.paused = False
        self.lost = False
        # redis-py's stream protocol, told when the socket closes (its `disconnect`
        # waits for that).
        self._stream = self.transport.get_protocol()
        self.transport.set_protocol(self)

    def write(self, data: bytes) -> None:
        """Send now (what the socket does not take at once waits in its buffer)."""
        self.transport.write(data)

    async def aclose(self) -> None:
        """Close the connection (`on_lost` follows, if it was still open)."""
        with contextlib.suppress(Exception):
            await self.conn.disconnect(nowait=True)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while not self.lost:
            try:
                reply = self._reader.gets()
            except InvalidResponse as exc:
                self._lose(exc)
                self.transport.close()
                return
            if reply is _MORE:
                return
            if not isinstance(reply, _PUSH):  # RESP3 pushes answer no command
                self._on_reply(self, reply)

    def eof_received(self) -> bool:
        return False  # close the transport: `connection_lost` follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream.connection_lost(exc)
        self._lose(exc or RedisConnectionError("Connection closed by server."))

    def _lose(self, exc: Exception) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._on_resume is not None:
            self._on_resume()
