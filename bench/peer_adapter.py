"""empq in the shared peer benchmark (`../shared/peer-bench`).

    PEER_BENCH_ADAPTERS=bench/peer_adapter.py:EmpqAdapter \
        bash ../shared/peer-bench/run.sh --reps 1

The harness imports this file in its own virtualenv (no empq there): the adapter
only speaks HTTP to a hub. It starts one hub process (`python -m empq.hub` from this
project's `.venv`) on the harness's Redis database in `setup()`, submits jobs with
`POST /api/jobs` (one) and `POST /api/jobs/batch` (bulk), and runs `empq worker`
processes with the `MarkConnector` below, which calls the harness's probe
`jobmark.mark(i)` first thing. So the figures include everything a real job goes
through: REST submit, the worker's claim waiting on the hub (`wait_seconds`) or the
next claim carried by the last outcome (`claim_next`), the connector, complete.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from adapters.base import PEERS_DIR, QueueAdapter

ROOT = Path(__file__).resolve().parent.parent
EMPQ_PYTHON = os.environ.get("EMPQ_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
#: Worker slots (`concurrent_jobs`) per config.
CONCURRENCY = {"c1": 1, "c10": 10, "c64": 64}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmpqAdapter(QueueAdapter):
    """Hub + `empq worker` processes; jobs go in over the hub's REST API."""

    peer = "empq"
    packages = ()
    enqueue_mode = "bulk"
    CONFIGS = {
        name: f"1 hub process + empq worker (concurrent_jobs={slots}), REST submit, WebSocket pull"
        for name, slots in CONCURRENCY.items()
    }

    def __init__(self, config: str, redis_url: str, logdir: str) -> None:
        super().__init__(config, redis_url, logdir)
        self.hub: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.ws_port = 0
        self.conn: http.client.HTTPConnection | None = None

    # ------------------------------------------------------------------ hub

    def setup(self) -> None:
        """Start a fresh hub on our Redis database (after the harness's reset)."""
        self._stop_hub()
        self.http_port, self.ws_port = _free_port(), _free_port()
        env = dict(os.environ)
        env.update(
            EMPQ_REDIS_URL=self.redis_url,
            EMPQ_HUB_PORT=str(self.http_port),
            EMPQ_WS_PORT=str(self.ws_port),
            EMPQ_DATA_DIR=os.path.join(self.logdir, "empq-data"),
            EMPQ_ARTIFACT_DIR=os.path.join(self.logdir, "empq-artifacts"),
            EMPQ_LOG_LEVEL="warning",
        )
        log = open(os.path.join(self.logdir, "empq-hub.log"), "ab")  # noqa: SIM115
        self.hub = subprocess.Popen(
            [EMPQ_PYTHON, "-m", "empq.hub"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/ready")[0] == 200:
                    return
            except OSError:
                self.conn = None
            time.sleep(0.05)
        raise RuntimeError("empq hub did not become ready; see empq-hub.log")

    def reset(self) -> None:
        self._stop_hub()
        super().reset()

    def close(self) -> None:
        self._stop_hub()
        super().close()

    def _stop_hub(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.hub is not None:
            if self.hub.poll() is None:
                self.hub.send_signal(signal.SIGTERM)
                try:
                    self.hub.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.hub.pid, signal.SIGKILL)
                    self.hub.wait()
            self.hub = None

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)

    # ------------------------------------------------------------------ hooks

    @staticmethod
    def _job(i: int) -> dict[str, Any]:
        return {"type": "mark", "payload": {"i": i}, "requirements": {"service_type": "bench"}}

    def enqueue_many(self, n: int) -> None:
        for start in range(0, n, 1000):
            status, _ = self._request(
                "POST",
                "/api/jobs/batch",
                {"jobs": [self._job(i) for i in range(start, min(start + 1000, n))]},
            )
            assert status == 201, status

    def enqueue_one(self, i: int) -> None:
        status, _ = self._request("POST", "/api/jobs", self._job(i))
        assert status == 201, status

    def worker_env(self) -> dict[str, str]:
        here = str(Path(__file__).resolve().parent)
        return {
            "PYTHONPATH": os.pathsep.join([here, PEERS_DIR, os.environ.get("PYTHONPATH", "")]),
            "EMPQ_LOG_LEVEL": "warning",
            "EMPQ_HEARTBEAT_INTERVAL": "20",
        }

    def worker_command(self, index: int) -> list[str]:
        return [
            EMPQ_PYTHON,
            "-m",
            "empq.cli.main",
            "worker",
            "--hub-url",
            f"ws://127.0.0.1:{self.ws_port}",
            "--worker-id",
            f"bench-{index}-{os.getpid()}",
            "--connectors",
            "peer_adapter:MarkConnector",
            "--concurrent-jobs",
            str(CONCURRENCY[self.config]),
        ]


# ---------------------------------------------------------------------- worker side

try:  # only inside the empq worker process; the harness's venv has no empq
    from empq.connectors.base import Connector, JobContext, ProgressReporter
except ImportError:  # pragma: no cover - harness side
    pass
else:
    from adapters import jobmark

    class MarkConnector(Connector):
        """The benchmark's no-op job: record the probe, return nothing."""

        name = "bench-mark"
        services = ("bench",)
        # It never blocks: on the worker's own loop, as docs/connectors.md tells the
        # author of such a connector, and as the built-ins run. Without this it runs on
        # a loop of its own (a thread hop each way per job; docs/performance.md).
        shares_worker_loop = True

        async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
            jobmark.mark(int(job.payload["i"]))
            return {}


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through the peer-bench harness; see the module docstring")
