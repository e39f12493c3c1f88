"""The event stream: every job change is appended by its script; other events by `publish`."""

from __future__ import annotations

import json
from typing import Any, cast

from empq.broker.base import (
    BrokerBase,
    Event,
)


class EventsMixin(BrokerBase):
    """Publish and read events."""

    async def publish(self, event_type: str, data: dict[str, Any]) -> str:
        """Append a non-job event (worker_*, system_alert) to the event stream."""
        eid = await self._r.xadd(
            self.keys.events,
            {"type": event_type, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=self.settings.event_stream_max,
            approximate=True,
        )
        return cast(bytes, eid).decode()

    @staticmethod
    def parse_entry(eid: bytes | str, fields: dict[bytes, bytes]) -> list[Event]:
        """The events of one raw stream entry (as XREAD or XREADGROUP return it).

        An entry holds one event, or several of one type (a claim of several jobs
        writes their `job_update`s as one JSON array); they share the entry's id.
        """
        event_id = eid.decode() if isinstance(eid, bytes) else eid
        event_type = fields[b"type"].decode()
        data = json.loads(fields[b"data"])
        if isinstance(data, list):
            return [Event(event_id, event_type, d) for d in data if isinstance(d, dict)]
        return [Event(event_id, event_type, data if isinstance(data, dict) else {})]

    def _events(self, entries: list[Any]) -> list[Event]:
        return [ev for eid, fields in entries for ev in self.parse_entry(eid, fields)]

    async def read_events(
        self, last_id: str = "$", block_ms: int = 1000, count: int = 500
    ) -> list[Event]:
        """Events after `last_id`, waiting up to `block_ms` for the first one."""
        reply = await self._r.xread({self.keys.events: last_id}, count=count, block=block_ms)
        if not reply:
            return []
        return self._events(reply[0][1])

    async def events_since(self, event_id: str, count: int = 1000) -> list[Event]:
        """Up to `count` events after `event_id`, for a subscriber catching up."""
        entries = await self._r.xrange(self.keys.events, f"({event_id}", "+", count=count)
        return self._events(entries)

    async def last_event_id(self) -> str:
        """The id of the newest event ("0-0" when there is none)."""
        entries = await self._r.xrevrange(self.keys.events, "+", "-", count=1)
        return entries[0][0].decode() if entries else "0-0"
