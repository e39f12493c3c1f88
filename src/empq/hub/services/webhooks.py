"""Webhooks (CONTRACT §5): registrations, a durable outbox in Redis, signed delivery.

Path of an event: the shared event stream → a consumer group `webhooks` (each
event goes to one hub, and stays pending until that hub has written its
deliveries to the outbox, so a hub that dies mid-way leaves it for another hub to
claim) → `keys.webhook_deliveries` + `keys.webhook_outbox` (due time) → one hub
holding the `webhooks` lease POSTs what is due, retrying with back-off
(`EMPQ_WEBHOOK_RETRY_DELAYS`, default 1, 5, 15 s). None of this runs on the claim
or dispatch path, so a slow endpoint never slows the queue. Delivery is at least
once; receivers can de-duplicate on the `X-EMPQ-Delivery` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.exceptions import RedisError, ResponseError

from empq.errors import ValidationError
from empq.hub.leases import wait_set
from empq.hub.services.events import passes
from empq.hub.services.webhook_targets import resolves_private, target_refused
from empq.protocol import NotificationFilters, now_ms

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.config import HubSettings
    from empq.hub.leases import Leases
    from empq.hub.metrics import HubMetrics

log = logging.getLogger("empq.hub.services.webhooks")

WebhookEvent = Literal[
    "job_status_change", "job_progress", "job_completed", "job_failed", "worker_alert"
]
ALL_EVENTS: tuple[str, ...] = (
    "job_status_change",
    "job_progress",
    "job_completed",
    "job_failed",
    "worker_alert",
)
GROUP = "webhooks"
DELIVERY_TIMEOUT = 10.0
#: After new events show up in the stream, the outbox consumer waits this long for more
#: to gather before it reads (at once again after a full read).
POLL_SECONDS = 0.05
#: The consumer reads at least this often even when no new event was seen (seconds),
#: and the delivery task looks at the outbox at least this often.
IDLE_SECONDS = 1.0
#: The delivery task never sleeps less than this between rounds (seconds).
DELIVERY_MIN_SECONDS = 0.05
#: After new events, the hub holding the delivery lease runs a round this much later
#: (seconds): time for whichever hub's consumer took them to add their deliveries.
DELIVERY_AFTER_EVENTS = 3 * POLL_SECONDS
READ_COUNT = 1000
#: The most deliveries one round attempts.
DELIVERY_BATCH = 100
#: Job ids in an event entry's raw JSON (one event or an array of them).
_JOB_IDS = re.compile(rb'"job_id":"([^"\\]+)"')


class WebhookIn(BaseModel):
    """`POST /api/webhooks`."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=8, max_length=2000)]
    events: Annotated[list[WebhookEvent], Field(min_length=1)] = Field(
        default_factory=lambda: list(ALL_EVENTS)  # type: ignore[arg-type]
    )
    secret: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    filters: NotificationFilters | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


def webhook_event(event_type: str, data: dict[str, Any]) -> str | None:
    """The webhook event name for a stream event (None: not sent to webhooks)."""
    if event_type == "job_update":
        if data.get("status") == "in_progress" and data.get("previous_status") == "in_progress":
            return "job_progress"
        return "job_status_change"
    if event_type in ("job_completed", "job_failed"):
        return event_type
    if event_type in ("system_alert", "worker_disconnected"):
        return "worker_alert"
    return None


def sign(secret: str, body: bytes) -> str:
    """`X-EMPQ-Signature` value: `sha256=<hex HMAC of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_entry(fields: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (type, data) events of a raw stream entry as the broker writes it.

    An entry holds one event or a JSON array of several (see `EventsMixin.parse_entry`);
    an unreadable entry holds none.
    """
    try:
        data = json.loads(fields[b"data"])
        event_type = _text(fields[b"type"])
    except (KeyError, ValueError):
        return []
    if isinstance(data, list):
        return [(event_type, d) for d in data if isinstance(d, dict)]
    return [(event_type, data if isinstance(data, dict) else {})]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Webhooks:
    """Registrations, the outbox consumer and the deliverer of one hub."""

    def __init__(
        self, settings: HubSettings, broker: Broker, metrics: HubMetrics, leases: Leases
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.leases = leases
        #: Whose outbox consumer this is (the hub's id).
        self.consumer = leases.holder
        # redis-py types replies as unions; with decode_responses off they are bytes.
        self.redis: Any = broker.redis
        self.keys = broker.keys
        self.delays = list(settings.webhook_retry_delays)
        self._registrations: list[dict[str, Any]] = []
        self._loaded_at = 0.0
        self._job_urls: OrderedDict[str, str | None] = OrderedDict()
        self.client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT, follow_redirects=False)
        #: Set by the event pump when the stream has new events: the consumer reads then.
        self.new_events = asyncio.Event()
        #: Set when this hub's consumer adds deliveries: the delivery task runs then.
        self.outbox_grew = asyncio.Event()
        self.idle_seconds = IDLE_SECONDS
        self._round_soon: asyncio.TimerHandle | None = None

    async def close(self) -> None:
        if self._round_soon is not None:
            self._round_soon.cancel()
        await self.client.aclose()

    # ------------------------------------------------------------ registrations

    async def create(self, body: WebhookIn, owner: str | None = None) -> dict[str, Any]:
        """Store a registration; `owner` is the customer of the key that made it."""
        # The name is resolved too: `localhost.`, `2130706433` or a DNS name pointing at
        # 10.0.0.5 reach the same internal services as the literal address would.
        if self.settings.webhook_deny_private and await target_refused(body.url):
            raise ValidationError(
                "webhook url targets a loopback or private address, or a host that does "
                "not resolve (EMPQ_WEBHOOK_DENY_PRIVATE is on)",
                [{"field": "url", "message": "private and loopback addresses are not allowed"}],
            )
        record = {
            "id": uuid.uuid4().hex,
            "url": body.url,
            "events": list(body.events),
            "filters": body.filters.model_dump(mode="json", exclude_none=True)
            if body.filters
            else None,
            "secret": body.secret,
            "created_at": now_ms(),
        }
        if owner is not None:
            record["customer_id"] = owner
        await self.redis.hset(self.keys.webhooks, record["id"], json.dumps(record))
        self._loaded_at = 0.0
        return public(record)

    async def list_all(self) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.webhooks)
        records = [json.loads(v) for v in raw.values()]
        return sorted(records, key=lambda r: (r["created_at"], r["id"]))

    async def get(self, webhook_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self.keys.webhooks, webhook_id)
        return json.loads(raw) if raw else None

    async def delete(self, webhook_id: str) -> bool:
        self._loaded_at = 0.0
        return bool(await self.redis.hdel(self.keys.webhooks, webhook_id))

    async def _current(self) -> list[dict[str, Any]]:
        if time.monotonic() - self._loaded_at > 1.0:
            self._registrations = await self.list_all()
            self._loaded_at = time.monotonic()
        return self._registrations

    # ------------------------------------------------------------ outbox

    def remember_job_url(self, job_id: str, url: str | None) -> None:
        """Note a job's `webhook_url` (it never changes), e.g. at submission on this hub."""
        self._job_urls[job_id] = url
        if len(self._job_urls) > 100_000:
            self._job_urls.popitem(last=False)

    async def _load_job_urls(self, job_ids: set[str]) -> None:
        """Learn the `webhook_url` of jobs not seen before: one pipelined read per batch."""
        unknown = [j for j in job_ids if j not in self._job_urls]
        if not unknown:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in unknown:
                # The broker keeps each submitted field in the job hash (codec.py).
                pipe.hget(self.keys.job(job_id), "webhook_url")
            urls = await pipe.execute()
        for job_id, url in zip(unknown, urls, strict=True):
            self.remember_job_url(job_id, _text(url) if url else None)

    async def deliveries_for(
        self, event_id: str, event_type: str, data: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Outbox entries for one stream event."""
        name = webhook_event(event_type, data)
        if name is None:
            return []
        payload_data = {k: v for k, v in data.items() if k != "webhook_url"}
        payload_data.setdefault("job_id", None)
        targets: list[tuple[str | None, str, str | None]] = []
        for reg in await self._current():
            if name not in reg["events"]:
                continue
            filters = reg.get("filters")
            if name == "worker_alert" and reg.get("customer_id") is not None:
                continue  # a customer's webhook hears only its jobs
            if (
                filters
                and name != "worker_alert"
                and not passes(NotificationFilters.model_validate(filters), data)
            ):
                continue
            targets.append((reg["id"], reg["url"], reg.get("secret")))
        job_id = data.get("job_id")
        if name != "worker_alert" and isinstance(job_id, str):
            if "webhook_url" in data:
                url = data["webhook_url"] if isinstance(data["webhook_url"], str) else None
            else:
                await self._load_job_urls({job_id})
                url = self._job_urls.get(job_id)
            if url:
                targets.append((None, url, None))
        out = []
        for webhook_id, url, secret in targets:
            body = {
                "webhook_id": webhook_id,
                "event_type": name,
                "timestamp": now_ms(),
                "data": payload_data,
            }
            out.append(
                {
                    # Events of one stream entry share its id; the job tells them apart.
                    "id": f"{event_id}:{data.get('job_id') or '-'}:{webhook_id or 'job'}",
                    "webhook_id": webhook_id,
                    "url": url,
                    "secret": secret,
                    "body": json.dumps(body, separators=(",", ":"), default=str),
                    "attempt": 0,
                }
            )
        return out

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.events, GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume(self) -> None:
        """Move stream events into the outbox; runs for the hub's lifetime."""
        consumer = self.consumer
        backoff = 0.1
        next_reclaim = 0.0
        while True:
            try:
                await self._ensure_group()
                while True:
                    batch: list[tuple[str, dict[Any, Any]]] = []
                    if time.monotonic() >= next_reclaim:
                        next_reclaim = time.monotonic() + 10
                        claimed = await self.redis.xautoclaim(
                            self.keys.events, GROUP, consumer, min_idle_time=30_000, count=500
                        )
                        batch.extend((_text(i), f) for i, f in claimed[1] if f)
                    # Not a blocking read: that would wake this hub for every event,
                    # right when the claim that follows it needs the loop. The event
                    # pump, which reads every event anyway, says when there are new ones.
                    resp = await self.redis.xreadgroup(
                        GROUP, consumer, {self.keys.events: ">"}, count=READ_COUNT
                    )
                    for _stream, entries in resp or []:
                        batch.extend((_text(i), f) for i, f in entries)
                    if batch:
                        await self._enqueue(batch)
                    backoff = 0.1
                    if len(batch) < READ_COUNT:
                        await self._await_events()
            except (RedisError, OSError) as exc:
                log.warning("webhook consumer: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def events_seen(self) -> None:
        """The event pump has read new events (of any hub).

        This hub's consumer reads them; and if this hub holds the delivery lease, a
        delivery round follows `DELIVERY_AFTER_EVENTS` later (one at a time), since
        the consumer that took them may be another hub's, which cannot wake this
        hub's delivery task directly.
        """
        self.new_events.set()
        if "webhooks" in self.leases.held and self._round_soon is None:
            self._round_soon = asyncio.get_running_loop().call_later(
                DELIVERY_AFTER_EVENTS, self._round_due
            )

    def _round_due(self) -> None:
        self._round_soon = None
        self.outbox_grew.set()

    async def _await_events(self) -> None:
        """Until the event pump has seen new events (or `idle_seconds`), then a gather."""
        await wait_set(self.new_events, self.idle_seconds)
        await asyncio.sleep(POLL_SECONDS)
        self.new_events.clear()  # after the gather: what comes later sets it again

    async def _wanted(
        self, batch: list[tuple[str, dict[Any, Any]]]
    ) -> list[tuple[str, dict[Any, Any]]]:
        """The entries that may lead to a delivery.

        With no registered webhook, only events of jobs with a `webhook_url` can: those
        are found by the job ids in the raw text, without decoding every event.
        """
        if await self._current():
            return batch
        ids = [
            [m.decode() for m in _JOB_IDS.findall(fields.get(b"data", b""))] for _, fields in batch
        ]
        await self._load_job_urls({i for found in ids for i in found})
        return [
            entry
            for entry, found in zip(batch, ids, strict=True)
            if any(self._job_urls.get(i) for i in found)
        ]

    async def _enqueue(self, batch: list[tuple[str, dict[Any, Any]]]) -> None:
        deliveries: list[dict[str, Any]] = []
        wanted = await self._wanted(batch)
        parsed = [(event_id, ev) for event_id, fields in wanted for ev in parse_entry(fields)]
        await self._load_job_urls(
            {ev[1]["job_id"] for _, ev in parsed if isinstance(ev[1].get("job_id"), str)}
        )
        for event_id, (event_type, data) in parsed:
            deliveries += await self.deliveries_for(event_id, event_type, data)
        now = now_ms()
        async with self.redis.pipeline(transaction=True) as pipe:
            for d in deliveries:
                pipe.hsetnx(self.keys.webhook_deliveries, d["id"], json.dumps(d))
                pipe.zadd(self.keys.webhook_outbox, {d["id"]: now}, nx=True)
            pipe.xack(self.keys.events, GROUP, *[i for i, _ in batch])
            await pipe.execute()
        if deliveries:
            self.outbox_grew.set()  # the delivery task, if this hub holds its lease

    # ------------------------------------------------------------ delivery

    async def deliver_round(self) -> float:
        """One round of the delivery task: what is due, then seconds until the next one.

        The outbox's head (by due time) is read once: the due part is delivered; with
        nothing due, its first entry says when to look again (one call per idle round).
        The task also wakes when this hub's consumer adds to the outbox, and 150 ms
        after this hub's event pump reads new events (`events_seen`).
        """
        outbox = self.keys.webhook_outbox
        head = await self.redis.zrange(outbox, 0, DELIVERY_BATCH - 1, withscores=True)
        now = now_ms()
        due = [_text(member) for member, at in head if at <= now]
        if due:
            await self._deliver(due)
            head = await self.redis.zrange(outbox, 0, 0, withscores=True)
        if not head:
            return self.idle_seconds
        return max((float(head[0][1]) - now_ms()) / 1000, DELIVERY_MIN_SECONDS)

    async def _deliver(self, ids: list[str]) -> int:
        """POST each delivery once (concurrently); reschedule or drop failures."""
        raws = await self.redis.hmget(self.keys.webhook_deliveries, ids)
        jobs = [self._attempt(i, json.loads(r)) for i, r in zip(ids, raws, strict=True) if r]
        for i, r in zip(ids, raws, strict=True):
            if not r:
                await self.redis.zrem(self.keys.webhook_outbox, i)
        await asyncio.gather(*jobs)
        return len(jobs)

    async def _post(self, d: dict[str, Any]) -> str | None:
        """One attempt; None on success, else why it failed."""
        if self.settings.webhook_deny_private and await resolves_private(d["url"]):
            return "private address refused"
        body = d["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "X-EMPQ-Delivery": d["id"],
            "User-Agent": "empq-hub",
        }
        if d.get("secret"):
            headers["X-EMPQ-Signature"] = sign(d["secret"], body)
        try:
            resp = await self.client.post(d["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if resp.status_code < 300 else f"HTTP {resp.status_code}"

    async def _attempt(self, delivery_id: str, d: dict[str, Any]) -> None:
        error = await self._post(d)
        if error is None:
            self.metrics.webhook_deliveries.inc()
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.webhook_outbox, delivery_id)
                pipe.hdel(self.keys.webhook_deliveries, delivery_id)
                await pipe.execute()
            return
        attempt = int(d.get("attempt", 0))
        final = attempt >= len(self.delays) or error == "private address refused"
        self.metrics.webhook_failures.labels("true" if final else "false").inc()
        async with self.redis.pipeline(transaction=True) as pipe:
            if final:
                log.warning(
                    "webhook %s to %s dropped after %d attempts: %s",
                    delivery_id,
                    d["url"],
                    attempt + 1,
                    error,
                )
                pipe.zrem(self.keys.webhook_outbox, delivery_id)
                pipe.hdel(self.keys.webhook_deliveries, delivery_id)
            else:
                d["attempt"] = attempt + 1
                d["last_error"] = error
                due = now_ms() + int(self.delays[attempt] * 1000)
                pipe.hset(self.keys.webhook_deliveries, delivery_id, json.dumps(d))
                pipe.zadd(self.keys.webhook_outbox, {delivery_id: due})
            await pipe.execute()


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A registration as the API shows it: the secret is never echoed."""
    shown = {k: v for k, v in record.items() if k != "secret"}
    shown["has_secret"] = bool(record.get("secret"))
    return shown
