"""Leader leases: one hub at a time runs each background task.

A lease is a Redis string set with `SET NX PX` and renewed by its holder (every
round, and every third of its TTL while a round runs, so a round may outlast the
TTL); when a hub dies, its leases expire and another hub takes the work over within
one TTL.
The work itself is idempotent on the broker's side, so a short overlap during a
hand-over does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from redis.asyncio import Redis
from redis.exceptions import RedisError

from empq.keys import Keys

log = logging.getLogger("empq.hub.leases")


def _script(name: str) -> str:
    return resources.files("empq.hub").joinpath("lua", name).read_text()


class Leases:
    """Acquire, renew and release named leases for one holder."""

    def __init__(self, redis: Redis, keys: Keys, holder: str) -> None:
        self.keys = keys
        self.holder = holder
        self._acquire = redis.register_script(_script("lease_acquire.lua"))
        self._release = redis.register_script(_script("lease_release.lua"))
        self.held: set[str] = set()

    async def hold(self, name: str, ttl: float) -> bool:
        """Acquire or renew lease `name` for `ttl` seconds; whether we hold it now."""
        got = await self._acquire(keys=[self.keys.lease(name)], args=[self.holder, int(ttl * 1000)])
        if got:
            self.held.add(name)
        else:
            self.held.discard(name)
        return bool(got)

    async def release_all(self) -> None:
        """Give up every lease this holder has, so a peer takes over at once.

        One script call for all of them: with Redis gone, a hub that is stopping waits
        for one call's retries, not one per lease.
        """
        names = sorted(self.held)
        self.held.clear()
        if not names:
            return
        try:
            await self._release(keys=[self.keys.lease(n) for n in names], args=[self.holder])
        except (RedisError, OSError) as exc:
            log.warning("could not release leases %s: %s", ", ".join(names), exc)


async def run_leased(
    leases: Leases,
    name: str,
    interval: float,
    work: Callable[[], Awaitable[float | None]],
    *,
    ttl: float | None = None,
    wake: asyncio.Event | None = None,
) -> None:
    """Every `interval` seconds, run `work` if this hub holds lease `name`.

    A `work` that returns seconds asks to run again after that long when it is
    sooner than `interval` (the next delayed retry is due then). Setting `wake` runs the
    next round at once (something new may be due): tasks that would otherwise poll
    often can then poll rarely, and an idle hub stays off the CPU.

    Errors in one round are logged and the loop goes on: a Redis hiccup must not
    stop the heartbeat monitor for good.
    """
    ttl = ttl or max(interval * 3, 2.0)
    while True:
        delay = interval
        try:
            if await leases.hold(name, ttl):
                due = await _holding(leases, name, ttl, work)
                if due is not None:
                    delay = min(interval, max(due, 0.0))
        except (RedisError, OSError) as exc:
            log.warning("background task %s: redis error: %s", name, exc)
        except Exception:
            log.exception("background task %s failed; it will run again", name)
        await pause(delay, wake)


async def _holding(
    leases: Leases, name: str, ttl: float, work: Callable[[], Awaitable[float | None]]
) -> float | None:
    """Run `work`, renewing lease `name` every third of `ttl` until it returns.

    A round may take longer than the TTL (webhook deliveries wait for slow receivers):
    without renewal another hub would start the same work meanwhile, and with a TTL
    long enough for the slowest round, a dead holder's work would wait that long.
    The renewer starts only once a round outlasts a third of the TTL (most rounds are
    done long before), and a renewal in flight when the round ends is let finish:
    cancelling it mid-call would make redis-py drop the connection it was using.
    """
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    renewer: list[asyncio.Task[None]] = []
    timer = loop.call_later(
        ttl / 3, lambda: renewer.append(loop.create_task(_renew(leases, name, ttl, done)))
    )
    try:
        return await work()
    finally:
        timer.cancel()
        done.set()
        if renewer:
            await renewer[0]


async def _renew(leases: Leases, name: str, ttl: float, done: asyncio.Event) -> None:
    """Renew lease `name` now and every third of `ttl` after, until `done` is set."""
    while not done.is_set():
        try:
            if not await leases.hold(name, ttl):
                log.warning("background task %s: lease lost during a round", name)
        except (RedisError, OSError) as exc:
            log.warning("background task %s: could not renew its lease: %s", name, exc)
        await wait_set(done, ttl / 3)


async def pause(seconds: float, wake: asyncio.Event | None) -> None:
    """Sleep `seconds`, or less if `wake` is set meanwhile (it is then cleared)."""
    if wake is None:
        await asyncio.sleep(seconds)
        return
    await wait_set(wake, seconds)
    wake.clear()


async def wait_set(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set, for at most `seconds` (it is left as it is)."""
    if not event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
