"""Three steps of one workflow share its priority and start time: priority inheritance.

Only the first step says `workflow_priority=90`; steps 2 and 3 carry their own low
priority (10) but inherit 90 from the workflow, so all three are claimed ahead of an
older standalone job of priority 70, and behind a standalone job of priority 95.

The jobs ask for a service no worker offers (`example-only`), so they stay queued
and the claim order is visible as `position`; the script cancels them at the end.

    python examples/workflow_priority.py [--hub http://127.0.0.1:3001]
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

from empq import Client, EmpqError

NOWHERE = {"service_type": "example-only"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", default=os.environ.get("EMPQ_HUB", "http://127.0.0.1:3001"))
    args = parser.parse_args()
    workflow = f"wf-{uuid.uuid4().hex[:8]}"
    labels: dict[str, str] = {}

    with Client(args.hub, api_key=os.environ.get("EMPQ_API_KEY")) as client:

        def submit(label: str, job_type: str, priority: int, **fields: Any) -> None:
            job = client.submit(job_type, priority=priority, requirements=NOWHERE, **fields)
            labels[job.id] = label

        try:
            submit("standalone, priority 70, submitted first", "caption", 70)
            submit(
                "step 1, priority 50, workflow_priority 90",
                "generate",
                50,
                workflow_id=workflow,
                workflow_priority=90,
                step_number=1,
            )
            submit(
                "step 2, priority 10, inherits 90",
                "upscale",
                10,
                workflow_id=workflow,
                step_number=2,
            )
            submit(
                "step 3, priority 10, inherits 90",
                "watermark",
                10,
                workflow_id=workflow,
                step_number=3,
            )
            submit("standalone, priority 95", "thumbnail", 95)  # fmt: skip
            jobs = sorted((client.get(job_id) for job_id in labels), key=lambda j: j.position or 0)
            print(f"claim order of workflow {workflow} and two standalone jobs:")
            for rank, job in enumerate(jobs, 1):
                print(f"  {rank}. {labels[job.id]:<45} (queue position {job.position})")
        except EmpqError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for job_id in labels:  # leave the queue as we found it
                client.cancel(job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
