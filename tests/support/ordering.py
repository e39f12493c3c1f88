"""The claim order of CONTRACT §2, as one sortable string per queued job: the tests'
model of the order key that `submit.lua` builds (the product computes it only there,
inside the script that queues the job, where workflow steps inherit their fields).

A queued job's *order key* sorts, byte for byte, in the order jobs must be claimed:

    PPP TTTTTTTTTTTTT SSSSSS QQQQQQQQQQQQ | job_id
    |   |             |      |
    |   |             |      submission sequence (12 digits)
    |   |             step number (6 digits; none = 0)
    |   effective time in ms since the epoch (13 digits, < 2**42 ≈ year 2109)
    100 - effective priority (3 digits: 000 is priority 100)

Every field is fixed-width decimal, so lexicographic order equals the tuple order
(priority desc, time asc, step asc, sequence asc). Priority sits in the leading
characters, so no age can ever outweigh it — unlike the original's
`priority * 1e6 + timestamp` float score, where one priority point was worth
~17 minutes of age. Redis keeps these as members of sorted sets with score 0 and
compares them with `memcmp`, the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TIME_MS = 2**42 - 1
MAX_STEP = 10**6 - 1
MAX_SEQ = 10**12 - 1


@dataclass(frozen=True, slots=True)
class OrderFields:
    """The four things a job is ordered by."""

    priority: int
    time_ms: int
    step: int
    seq: int


def effective_priority(
    priority: int, workflow_priority: int | None, inherited_priority: int | None = None
) -> int:
    """The job's workflow priority (own, else inherited from its workflow), else its own."""
    if workflow_priority is not None:
        return workflow_priority
    if inherited_priority is not None:
        return inherited_priority
    return priority


def effective_time(
    submitted_ms: int, workflow_datetime: int | None, inherited_datetime: int | None = None
) -> int:
    """The job's workflow start time (own, else its workflow's first step), else its own."""
    if workflow_datetime is not None:
        return workflow_datetime
    if inherited_datetime is not None:
        return inherited_datetime
    return submitted_ms


def order_key(fields: OrderFields, job_id: str) -> str:
    """The sortable member for a queued job (see the module docstring)."""
    if not 0 <= fields.priority <= 100:
        raise ValueError(f"priority {fields.priority} outside 0..100")
    if not 0 <= fields.time_ms <= MAX_TIME_MS:
        raise ValueError(f"time {fields.time_ms} outside 0..2**42")
    if not 0 <= fields.step <= MAX_STEP:
        raise ValueError(f"step {fields.step} outside 0..{MAX_STEP}")
    if not 0 <= fields.seq <= MAX_SEQ:
        raise ValueError(f"sequence {fields.seq} outside 0..{MAX_SEQ}")
    head = f"{100 - fields.priority:03d}{fields.time_ms:013d}"
    return f"{head}{fields.step:06d}{fields.seq:012d}|{job_id}"


def parse_order_key(member: str) -> tuple[OrderFields, str]:
    """The fields and job id an order key was made from."""
    head, _, job_id = member.partition("|")
    return (
        OrderFields(
            priority=100 - int(head[0:3]),
            time_ms=int(head[3:16]),
            step=int(head[16:22]),
            seq=int(head[22:34]),
        ),
        job_id,
    )


def job_id_of(member: str) -> str:
    """The job id at the end of an order key."""
    return member.partition("|")[2]
