"""The worker's connection loop: connect to the hub, run a session, reconnect with back-off.

Any loss of the link (refused, dropped, closed by the hub) ends the session and the
loop connects again, after `reconnect_after` when the hub said so
(`server_disconnect`) and otherwise with exponential back-off and full jitter. The
worker's jobs keep running meanwhile. A refused worker token or a hub URL that is
not a WebSocket URL ends the worker instead (`Worker.fatal`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from empq.errors import AuthError, EmpqError, HubUnavailable
from empq.worker.session import Session

if TYPE_CHECKING:
    from empq.worker.runtime import Worker

log = logging.getLogger("empq.worker")

RECONNECT_MIN = 0.2
RECONNECT_MAX = 30.0


def reconnect_delay(failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt `failures + 1`.

    Exponential back-off with full jitter, so a fleet that lost its hub at the same
    moment does not come back in step.
    """
    ceiling = min(RECONNECT_MAX, RECONNECT_MIN * 2 ** min(failures, 32))
    return (rng or random).uniform(0, ceiling)


def _auth_headers(worker: Worker) -> dict[str, str]:
    token = worker.settings.worker_token
    return {"Authorization": f"Bearer {token}"} if token else {}


async def connection_loop(worker: Worker) -> None:
    """Keep `worker` connected to its hub until it closes or a fatal error."""
    failures = 0
    while True:
        worker.reconnect_after = None
        try:
            async with connect(
                worker.settings.hub_url,
                max_size=16 * 2**20,
                # Small JSON messages: deflate costs both ends more CPU than it saves.
                compression=None,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                additional_headers=_auth_headers(worker),
            ) as ws:
                registered = await Session(worker, ws).run()
                if registered:
                    failures = 0
        except AuthError as exc:
            log.error("hub refused this worker: %s", exc.message)
            worker.fatal = exc
            worker.stop.set()
            return
        except (
            OSError,
            TimeoutError,
            InvalidHandshake,
            ConnectionClosed,
            HubUnavailable,
        ) as exc:
            log.info("hub link down: %s: %s", type(exc).__name__, exc)
        except InvalidURI as exc:
            log.error("EMPQ_HUB_URL is not a WebSocket URL: %s", exc)
            worker.fatal = EmpqError(f"EMPQ_HUB_URL is not a ws:// or wss:// URL: {exc}")
            worker.stop.set()
            return
        except Exception:  # keep the worker (and its running jobs) alive; retry later
            log.exception("hub session failed; reconnecting")
        finally:
            worker.link.ws = None
            worker.registered.clear()
            worker.metrics.connected.set(0)
        if worker.closing:
            return
        delay = worker.reconnect_after
        if delay is None:
            delay = reconnect_delay(failures)
        failures += 1
        await asyncio.sleep(delay)
