"""Submit one job and wait for its result.

Start everything first (`empq dev` in another terminal), then:

    python examples/submit_and_wait.py
    python examples/submit_and_wait.py --hub http://queue.example.com:3001 --duration 5
"""

from __future__ import annotations

import argparse
import os
import sys

from empq import Client, EmpqError, JobStatus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", default=os.environ.get("EMPQ_HUB", "http://127.0.0.1:3001"))
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds")
    args = parser.parse_args()

    with Client(args.hub, api_key=os.environ.get("EMPQ_API_KEY")) as client:
        try:
            job = client.submit(
                type="text_to_image",
                payload={"duration": args.duration, "steps": 5},
                priority=60,
                requirements={"service_type": "simulation"},
            )
            print(f"submitted {job.id}: {job.status} at position {job.position}")
            for warning in job.warnings:
                print(f"warning: {warning}")
            # wait() follows the job's events over the WebSocket; watch() would give
            # every intermediate snapshot (progress, worker) as well
            done = client.wait(job.id, timeout=120)
        except EmpqError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"{done.id}: {done.status} on {done.worker_id} after {done.attempts} failed attempt(s)")
    print(f"result: {done.result}")
    return 0 if done.status == JobStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
