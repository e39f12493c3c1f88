"""Usage accounting read back: per customer, over hourly buckets (docs/tenants.md).

complete.lua, fail.lua and cancel.lua add to the hour's hash as each job ends (in the
same script as the change): `<customer>|jobs:<status>` (final outcomes),
`<customer>|run` and `<customer>|gpu` (every attempt's run time, and times the
worker's GPUs), `<customer>|wait` (queue wait of final outcomes). A job without a
customer counts under the empty name, reported as `customer_id: null`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from empq.broker.base import BrokerBase

HOUR_MS = 3_600_000


@dataclass(slots=True)
class CustomerUsage:
    """One customer's totals over a time range."""

    customer_id: str | None
    jobs: dict[str, int] = field(default_factory=dict)
    gpu_seconds: float = 0.0
    wait_seconds: float = 0.0
    run_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The shape of `GET /api/usage`'s `customers` items."""
        return {
            "customer_id": self.customer_id,
            "jobs": dict(sorted(self.jobs.items())),
            "gpu_seconds": round(self.gpu_seconds, 3),
            "wait_seconds": round(self.wait_seconds, 3),
            "run_seconds": round(self.run_seconds, 3),
        }


def hours(from_ms: int, to_ms: int) -> range:
    """The hour buckets that overlap [from_ms, to_ms)."""
    return range(from_ms // HOUR_MS, (max(to_ms, from_ms + 1) - 1) // HOUR_MS + 1)


def aggregate(
    buckets: Iterable[dict[bytes, bytes]], customer_id: str | None
) -> list[CustomerUsage]:
    """Sum hourly hashes per customer (only `customer_id`'s when given), by customer id."""
    found: dict[str, CustomerUsage] = {}
    for bucket in buckets:
        for raw_field, raw_value in bucket.items():
            name, _, what = raw_field.decode().rpartition("|")
            if customer_id is not None and name != customer_id:
                continue
            usage = found.setdefault(name, CustomerUsage(name or None))
            value = float(raw_value)
            if what.startswith("jobs:"):
                status = what[5:]
                usage.jobs[status] = usage.jobs.get(status, 0) + int(value)
            elif what == "gpu":
                usage.gpu_seconds += value
            elif what == "run":
                usage.run_seconds += value
            elif what == "wait":
                usage.wait_seconds += value
    return [found[name] for name in sorted(found)]


class UsageMixin(BrokerBase):
    """`Broker.usage`: the read side of usage accounting."""

    async def usage(self, customer_id: str | None, from_ms: int, to_ms: int) -> list[CustomerUsage]:
        """Per-customer usage in the hours overlapping [from_ms, to_ms)."""
        async with self._r.pipeline(transaction=False) as pipe:
            for hour in hours(from_ms, to_ms):
                pipe.hgetall(self.keys.usage(hour))
            buckets = await pipe.execute()
        return aggregate(buckets, customer_id)

    async def gpu_seconds_totals(self) -> dict[str | None, float]:
        """GPU-seconds per customer since the deployment began (the metrics' counter)."""
        raw = await self._r.hgetall(self.keys.stats)
        prefix = b"gpu_seconds|"
        return {
            (k[len(prefix) :].decode() or None): float(v)
            for k, v in raw.items()
            if k.startswith(prefix)
        }
