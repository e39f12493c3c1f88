"""A reconnecting monitor's catch-up: the job events it missed, within a window.

`subscribe_job_notifications` with `since` (the last event id the monitor saw) replays
the matching job events after it, but only from the newest `EMPQ_CATCHUP_MAX_EVENTS`
events of the stream and from the last `EMPQ_CATCHUP_MAX_SECONDS`. When the gap was
wider (or Redis had already trimmed the stream past `since`), the oldest missed events
are left out and the reply says so: `catch_up.dropped` is true, and the monitor should
reload what it shows (`GET /api/jobs`) rather than trust the replay alone.

Events the hub reads after the subscription began reach the monitor live, and may come
before the replayed ones: each event carries its `event_id`, which orders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from empq.broker import Event
from empq.hub.services.events import JOB_EVENTS, event_message, wants_job_event

if TYPE_CHECKING:
    from empq.hub.connections import Connection
    from empq.hub.runtime import Hub


def _id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


@dataclass(slots=True)
class CatchUp:
    """What a catch-up found: the events to replay and whether older ones were left out."""

    since: str
    events: list[Event] = field(default_factory=list)
    dropped: bool = False
    #: The oldest event looked at (the replay starts after `since` or at this one).
    window_start: str | None = None

    def summary(self, replayed: int) -> dict[str, Any]:
        """The `catch_up` field of `job_notifications_subscribed`."""
        return {
            "since": self.since,
            "replayed": replayed,
            "dropped": self.dropped,
            "window_start": self.window_start,
        }


async def read_catch_up(hub: Hub, since: str, upto: str) -> CatchUp:
    """The stream's events after `since` and up to `upto`, within the configured window.

    `upto` is the event pump's position when the subscription began: later events reach
    the subscriber live, so none is sent twice or missed.
    """
    broker, s = hub.broker, hub.settings
    r: Any = broker.redis
    stream = broker.keys.events
    floor_ms = broker.clock() - int(s.catchup_max_seconds * 1000)
    result = CatchUp(since)
    start = f"({since}"
    if _id(since) < (floor_ms, 0):
        start = f"{floor_ms}-0"
        # events between `since` and the time window are not replayed
        result.dropped = bool(await r.xrange(stream, f"({since}", f"({floor_ms}-0", count=1))
    first = await r.xrange(stream, "-", "+", count=1)
    if first and _id(first[0][0].decode()) > _id(since) and since != "0-0":
        result.dropped = True  # the stream was trimmed past `since`
    if _id(upto) <= _id(since):
        return result
    newest = await r.xrevrange(stream, upto, start, count=s.catchup_max_events + 1)
    if len(newest) > s.catchup_max_events:
        result.dropped = True
        newest = newest[: s.catchup_max_events]
    newest.reverse()
    if newest:
        result.window_start = newest[0][0].decode()
    result.events = [ev for eid, fields in newest for ev in broker.parse_entry(eid, fields)]
    return result


def replay(conn: Connection, found: CatchUp) -> int:
    """Send the connection the job events of `found` that it subscribed to."""
    sent = 0
    for ev in found.events:
        if ev.type in JOB_EVENTS and wants_job_event(conn, ev.data):
            conn.send(event_message(ev.type, ev.data, ev.id))
            sent += 1
    return sent
