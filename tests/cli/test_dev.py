"""`empq dev` end to end, in a subprocess, as a newcomer runs it.

start → a job completes on a simulation worker → SIGINT → no process of the tree
is left → a second run still has the job that was queued when the first stopped.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from empq.redis_server import free_port
from empq.sdk import Client
from empq.status import JobStatus
from tests.cli.support import empq_argv

pytestmark = pytest.mark.slow


@dataclass
class DevRun:
    """A running `empq dev`, its output lines as they come, and its process tree."""

    proc: subprocess.Popen[str]
    hub_url: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for_line(self, text: str, within: float = 30) -> str:
        """The first output line containing `text` (fails after `within` seconds)."""
        for line in self.seen:
            if text in line:
                return line
        while True:
            try:
                line = self.lines.get(timeout=within)
            except queue.Empty:
                pytest.fail(f"no line with {text!r} in {within}s; output:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if text in line:
                return line

    def tree(self) -> list[psutil.Process]:
        """The supervisor and every process under it."""
        me = psutil.Process(self.proc.pid)
        return [me, *me.children(recursive=True)]


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))


@contextmanager
def empq_dev(data_dir: Path, hub_port: int, ws_port: int, *args: str) -> Iterator[DevRun]:
    env = {k: v for k, v in os.environ.items() if k != "EMPQ_REDIS_URL"}
    env.update(
        EMPQ_DATA_DIR=str(data_dir),
        EMPQ_HUB_PORT=str(hub_port),
        EMPQ_WS_PORT=str(ws_port),
        EMPQ_SIMULATION_DURATION="0.2",
        EMPQ_SIMULATION_STEPS="2",
        NO_COLOR="1",
    )
    proc = subprocess.Popen(
        [*empq_argv(), "dev", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=data_dir.parent,
    )
    run = DevRun(proc, f"http://127.0.0.1:{hub_port}")
    pump = threading.Thread(target=_pump, args=(proc, run.lines), daemon=True)
    pump.start()
    try:
        yield run
    finally:
        if proc.poll() is None:  # a failed test must not leave the tree behind
            for p in run.tree()[::-1]:
                p.kill()
            proc.wait(10)
        pump.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


def test_dev_runs_jobs_stops_cleanly_and_keeps_the_queue(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    hub_port, ws_port = free_port(), free_port()

    with empq_dev(data_dir, hub_port, ws_port, "--workers", "1") as dev:
        dev.wait_for_line(f"Dashboard: http://127.0.0.1:{hub_port}/")
        with Client(dev.hub_url) as client:
            job = client.submit(type="demo", requirements={"service_type": "simulation"})
            done = client.wait(job.id, timeout=30)
            assert done.status == JobStatus.COMPLETED
            assert done.result is not None
            assert done.result["simulated"] is True
            # nobody serves "comfyui" here: this one stays queued across the restart
            parked = client.submit(type="render", requirements={"service_type": "comfyui"})
        dev.wait_for_line("worker-1 |")
        tree = dev.tree()
        assert len(tree) >= 4, "supervisor, redis-server, hub and a worker"
        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(30) == 0
        _gone, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, f"left running: {[p.info if hasattr(p, 'info') else p for p in alive]}"

    with empq_dev(data_dir, hub_port, ws_port, "--workers", "0") as dev:
        dev.wait_for_line("Dashboard:")
        with Client(dev.hub_url) as client:
            again = client.get(parked.id)
        assert again.status == JobStatus.QUEUED
        dev.proc.send_signal(signal.SIGTERM)
        assert dev.proc.wait(30) == 0
