"""A connector that records each run, for tests that count runs across processes.

Loaded by `empq worker` child processes as
`EMPQ_CONNECTORS=tests.system.recording:Recording`. Each run appends `start <job id>
<pid>` when it begins and `done <job id> <pid>` when it returns to the file named by
`EMPQ_TEST_RUNS_FILE` (O_APPEND, one line per write), so a test can tell which process
ran a job, how many times, and which runs a fault cut short.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from empq.connectors.base import Connector, JobContext, ProgressReporter


def _record(what: str, job_id: str) -> None:
    line = f"{what} {job_id} {os.getpid()}\n".encode()
    fd = os.open(os.environ["EMPQ_TEST_RUNS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class Recording(Connector):
    """Sleeps `payload.seconds` (asyncio), reporting progress halfway."""

    name = "recording"
    services = ("recording",)
    shares_worker_loop = True

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        _record("start", job.id)
        seconds = float(job.payload.get("seconds", 0.1))
        await asyncio.sleep(seconds / 2)
        await progress(50, "halfway")
        await asyncio.sleep(seconds / 2)
        _record("done", job.id)
        return {"slept": seconds}


def read_runs(path: Path) -> list[tuple[str, str, int]]:
    """The recorded `(what, job id, pid)` lines, in the order they were written."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        what, job_id, pid = line.split()
        out.append((what, job_id, int(pid)))
    return out
