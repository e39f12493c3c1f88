"""`empq worker` as a user starts it: flags reach the worker, SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from empq.cli.main import run
from empq.sdk import AsyncClient
from empq.status import JobStatus
from tests.cli.support import Result, empq_argv
from tests.support.hub_fixtures import HubHandle


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    code = run(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


async def test_worker_flags_register_it_and_it_runs_jobs(hub: HubHandle) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    env["EMPQ_SIMULATION_DURATION"] = "0.1"
    proc = await asyncio.create_subprocess_exec(
        *empq_argv(), "worker", "--hub-url", hub.ws_url, "--worker-id", "cli-worker",
        "--service", "simulation", "--concurrent-jobs", "2", "--hub-http-url", hub.http_url,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with AsyncClient(hub.http_url) as client:
            job = await client.submit(type="demo", requirements={"service_type": "simulation"})
            done = await client.wait(job.id, timeout=20)
            registered = await client.worker("cli-worker")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert proc.stderr is not None
        await proc.stderr.read()
    assert done.status == JobStatus.COMPLETED
    assert done.worker_id == "cli-worker"
    assert registered.capabilities.performance.concurrent_jobs == 2
    assert "simulation" in registered.capabilities.services
    assert code == 0


def test_missing_capabilities_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = in_process(capsys, "worker", "--capabilities", str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert "--capabilities" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_invalid_capabilities_file_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caps = tmp_path / "worker.yaml"
    caps.write_text("services: [comfyui]\nhardware: {gpu_memory_gb: lots}\n")
    result = in_process(
        capsys, "worker", "--capabilities", str(caps), "--hub-url", "ws://127.0.0.1:9/"
    )
    assert result.code == 1
    assert "hardware.gpu_memory_gb" in result.err
    assert len(result.err.strip().splitlines()) == 1
