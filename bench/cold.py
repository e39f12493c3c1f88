"""What the submit path's pieces cost cold (caches evicted) and warm, in one process.

    .venv/bin/python bench/cold.py [--rounds 200]

Between dispatches the hub idles for milliseconds while other processes run, so its
code meets cold caches: each step then costs several times its cost in a loop.
Before each cold call this touches 16 MB of memory (more than the L2 and this
machine's share of the L3); the warm call follows it at once. Prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable

from empq.broker.core import new_job_id
from empq.codec import submission_fields
from empq.hub.dispatch import requirements_summary
from empq.matching import JobSpec
from empq.models import JobSubmission
from empq.protocol import dumps, wire

BODY = json.dumps(
    {"type": "bench", "payload": {"i": 1}, "requirements": {"service_type": "bench"}}
).encode()
_JUNK = bytearray(16 * 1024 * 1024)


def _evict() -> None:
    for i in range(0, len(_JUNK), 64):
        _JUNK[i] = (_JUNK[i] + 1) & 255


def measure(rounds: int, f: Callable[[], object]) -> tuple[float, float]:
    cold, warm = [], []
    for _ in range(rounds):
        _evict()
        t = time.perf_counter_ns()
        f()
        cold.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        f()
        warm.append(time.perf_counter_ns() - t)
    return statistics.median(cold) / 1000, statistics.median(warm) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    rounds = ap.parse_args().rounds
    sub = JobSubmission.model_validate_json(BODY)
    spec = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
    offer = {
        "type": "job_available",
        "timestamp": 1,
        "job_id": new_job_id(),
        "job_type": "bench",
        "priority": 50,
        "requirements_summary": requirements_summary(spec),
        "worker_id": "w",
    }
    cases: list[tuple[str, Callable[[], object]]] = [
        ("nothing (the measurement's own cost)", lambda: None),
        ("JobSubmission.model_validate_json", lambda: JobSubmission.model_validate_json(BODY)),
        ("JobSpec.of (remembered)", lambda: JobSpec.of(sub.type, None, sub.requirements)),
        ("submission_fields", lambda: submission_fields(sub)),
        ("uuid.uuid4().hex", lambda: uuid.uuid4().hex),
        ("os.urandom(16).hex() (new_job_id)", lambda: os.urandom(16).hex()),
        ("json.dumps(offer, separators=...)", lambda: json.dumps(offer, separators=(",", ":"))),
        ("protocol.dumps(offer) (pydantic-core)", lambda: dumps(offer)),
        ("wire('job_available', ...)", lambda: wire("job_available", job_id="x", worker_id="w")),
    ]
    print("| step | cold µs | warm µs |\n|---|---:|---:|")
    for name, f in cases:
        cold, warm = measure(rounds, f)
        print(f"| {name} | {cold:.1f} | {warm:.1f} |")


if __name__ == "__main__":
    main()
