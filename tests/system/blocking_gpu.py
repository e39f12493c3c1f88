"""A class connector whose `async def process` blocks like in-process torch code.

Loaded by `empq worker` child processes in `test_blocking_connector.py` as
`EMPQ_CONNECTORS=tests.system.blocking_gpu:BlockingGpu`. Each run appends the job's id
to the file named by `EMPQ_TEST_RUNS_FILE` (one line per run, O_APPEND), so the test
counts how many times each job ran across processes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from empq.connectors.base import Connector, JobContext, ProgressReporter


class BlockingGpu(Connector):
    """Blocks its event loop for `payload.seconds`, in `payload.blocks` stretches."""

    name = "blocking_gpu"
    services = ("gpu",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        # Blocking, as the rest of it is on purpose.
        with open(os.environ["EMPQ_TEST_RUNS_FILE"], "a", encoding="utf-8") as runs:  # noqa: ASYNC230
            runs.write(f"{job.id}\n")
        seconds = float(job.payload.get("seconds", 1.0))
        blocks = int(job.payload.get("blocks", 1))
        for i in range(blocks):
            time.sleep(seconds / blocks)  # noqa: ASYNC251 - the blocking call under test
            await progress(100 * (i + 1) / blocks, f"block {i + 1} of {blocks}")
        return {"blocked_for": seconds}
