"""Function connectors in a real worker: blocking code keeps the worker alive; hello world runs."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from empq.connectors.base import Connector, JobContext, ProgressReporter
from empq.worker.watchdog import LoopWatchdog
from tests.connectors import fn_targets
from tests.support.child_output import ChildOutput
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import WAIT, running_worker, submit, wait_for_job

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello_worker.py"


@pytest.mark.slow
async def test_blocking_sync_function_keeps_heartbeats_and_runs_its_job_once(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]],
) -> None:
    # The function blocks for 3 s; the hub drops a worker silent for 1 s. A blocked
    # loop would lose the job (attempt counted, run again); a thread keeps it.
    async with (
        hub_factory(heartbeat_timeout=1) as hub,
        running_worker(
            hub.ws_url, connectors=[fn_targets.block()], services=["block"], heartbeat_interval=0.2
        ) as worker,
        hub.client() as client,
    ):
        job_id = await submit(
            client, payload={"seconds": 3}, requirements={"service_type": "block"}
        )
        done = await wait_for_job(client, job_id, within=WAIT + 5)
        assert done["status"] == "completed"
        assert done["result"] == {"blocked_for": 3.0}
        assert done["attempts"] == 0
        assert done["worker_id"] == worker.worker_id
        assert worker.registrations == 1, "the hub never dropped the worker"


class BlockingAsync(Connector):
    """The mistake the watchdog is for: blocking code inside `async def process`."""

    name = "blocker"
    services = ("blocker",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        time.sleep(0.8)  # noqa: ASYNC251 - the blocking call under test
        return {}


async def test_a_blocked_event_loop_is_reported_naming_the_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = JobContext(id="job-42", type="t")
    watchdog = LoopWatchdog(
        asyncio.get_running_loop(), lambda: f"job {job.id} on connector blocker", threshold=0.2
    )
    recovered = threading.Event()

    class _Recovered(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "answered again" in record.getMessage():
                recovered.set()

    handler = _Recovered()
    logging.getLogger("empq.worker.watchdog").addHandler(handler)
    watchdog.start()
    try:
        with caplog.at_level(logging.WARNING, logger="empq.worker.watchdog"):
            await BlockingAsync().process(job, _no_progress)
            # The watchdog's thread logs the recovery line once the loop answers again.
            assert await asyncio.to_thread(recovered.wait, 5)
    finally:
        watchdog.stop()
        logging.getLogger("empq.worker.watchdog").removeHandler(handler)
    assert watchdog.stalls == 1
    assert "job job-42 on connector blocker" in caplog.text
    assert "@empq.connector" in caplog.text


async def test_an_answering_loop_is_never_reported() -> None:
    watchdog = LoopWatchdog(asyncio.get_running_loop(), lambda: "", threshold=0.2)
    watchdog.start()
    try:
        for _ in range(10):
            await asyncio.sleep(0.05)
    finally:
        watchdog.stop()
    assert watchdog.stalls == 0


async def _no_progress(progress: float, message: str | None = None, **_: Any) -> None:
    return


async def test_the_hello_world_example_runs_under_empq_worker(
    hub: HubHandle, tmp_path: Path
) -> None:
    # As the README says: the file next to you, loaded by `empq worker` (a console
    # script, whose sys.path lacks the current directory).
    shutil.copy(EXAMPLE, tmp_path / "hello_worker.py")
    empq_cmd = Path(sys.executable).parent / "empq"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    env.update(
        EMPQ_HUB_URL=hub.ws_url,
        EMPQ_CONNECTORS="hello_worker:hello",
        EMPQ_WORKER_ID="hello-1",
        EMPQ_LOG_LEVEL="info",
        PYTHONPATH="",
    )
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, read by a thread
        [str(empq_cmd), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = ChildOutput(proc, tmp_path / "worker.log")
    try:
        assert await output.wait_for("registered with hub", WAIT), output.text()
        async with hub.client() as client:
            job_id = await submit(
                client, payload={"name": "ada"}, requirements={"service_type": "hello"}
            )
            done = await wait_for_job(client, job_id)
        assert done["status"] == "completed", output.text()
        assert done["result"] == {"greeting": "hello ada"}
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, WAIT)
