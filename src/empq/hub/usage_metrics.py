"""`empq_gpu_seconds_total{customer}`, with a cap on its label values (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

#: The `customer` label of jobs without a customer, and of customers past the cap.
NO_CUSTOMER = "_none"
OTHER_CUSTOMERS = "_other"


class GpuSeconds(Collector):
    """The fleet's GPU-seconds per customer, as last read from Redis (at scrape time).

    At most `cap` customers get a label of their own (those with the most GPU-seconds);
    the rest are summed under `_other`, so the series count stays bounded however many
    customers there are. The totals are the fleet's (every hub reports the same), not
    this hub's share: do not sum the series over hubs.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.totals: dict[str | None, float] = {}

    def labelled(self) -> dict[str, float]:
        """The totals per label value, with the cap applied."""
        ranked = sorted(self.totals.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        out: dict[str, float] = {}
        for i, (customer, seconds) in enumerate(ranked):
            label = (customer or NO_CUSTOMER) if i < self.cap else OTHER_CUSTOMERS
            out[label] = out.get(label, 0.0) + seconds
        return out

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "empq_gpu_seconds", "GPU-seconds used, per customer (capped)", labels=["customer"]
        )
        for label, seconds in sorted(self.labelled().items()):
            family.add_metric([label], seconds)
        yield family
