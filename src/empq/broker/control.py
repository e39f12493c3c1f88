"""Queue control: paused service types, whose queued jobs claims skip.

The set lives in Redis (`Keys.paused_services`), shared by every hub. Each broker
keeps a copy, read again at most every `PAUSED_TTL` seconds by the claim path and at
once after this process changes it; other hubs also refresh on the `service_paused`
event (`refresh_paused`).
"""

from __future__ import annotations

import time

from empq.broker.queries import QueryMixin

#: How stale the claim path's copy of the paused set may be, in seconds.
PAUSED_TTL = 0.5


class ControlMixin(QueryMixin):
    """Pause and resume service types."""

    async def set_paused(self, service_type: str, paused: bool) -> None:
        """Pause or resume one service type (one SADD / SREM: atomic)."""
        if paused:
            await self._r.sadd(self.keys.paused_services, service_type)
        else:
            await self._r.srem(self.keys.paused_services, service_type)
        await self.refresh_paused()

    async def paused_services(self) -> frozenset[str]:
        """The paused service types, read now."""
        await self.refresh_paused()
        return self._paused

    @property
    def paused_now(self) -> frozenset[str]:
        """The copy of the paused set, as last read (no round trip)."""
        return self._paused

    async def refresh_paused(self) -> None:
        """Read the paused set again."""
        members = await self._r.smembers(self.keys.paused_services)
        self._paused = frozenset(m.decode() for m in members)
        self._paused_read = time.monotonic()

    async def _paused_fresh(self) -> frozenset[str]:
        """The paused set, read again if the copy is older than `PAUSED_TTL`."""
        if time.monotonic() - self._paused_read > PAUSED_TTL:
            await self.refresh_paused()
        return self._paused
