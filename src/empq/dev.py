"""`empq dev`: Redis, a hub and N simulation workers on one machine, under one supervisor.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches only
this supervisor, which then stops the children in order (workers first so they hand
their jobs back, then the hub, then Redis) in two stages: SIGTERM and a grace
period, then SIGKILL for whatever is left. On Linux each child also asks the kernel
to SIGTERM it if the supervisor dies, so even a `kill -9` of `empq dev` leaves no
orphans. Redis keeps an append-only file in the data directory, so a second run
finds the jobs that were still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from empq.config import HubSettings
from empq.errors import EmpqError
from empq.redis_server import RedisServer

log = logging.getLogger("empq.dev")

#: Seconds each stage of shutdown waits before the next, harsher one.
GRACE_SECONDS = 10.0
#: Seconds the hub has to answer `/ready` after it starts.
READY_TIMEOUT = 30.0

_COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "bright_cyan", "bright_green")
_PR_SET_PDEATHSIG = 1
#: Longest log line relayed from a child.
_LINE_LIMIT = 1024 * 1024


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child when the supervisor dies, whatever the cause."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _json_record(process: str, line: str) -> dict[str, Any]:
    """A child's JSON log line with `process` added, or a plain line wrapped as a record."""
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict):
            record.setdefault("process", process)
            return record
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"ts": ts, "level": "info", "logger": "empq.dev", "process": process, "message": line}


@contextlib.contextmanager
def embedded_redis(settings: HubSettings) -> Iterator[str]:
    """`settings.redis_url`, or the URL of a private persistent redis-server for this run."""
    if settings.redis_url:
        yield settings.redis_url
        return
    server = RedisServer(settings.data_dir / "redis", persistent=True)
    server.start()
    log.debug("embedded Redis on %s (data in %s)", server.url, server.data_dir)
    try:
        yield server.url
    finally:
        server.stop()


def dashboard_url(settings: HubSettings) -> str:
    """Where a browser on this machine finds the dashboard."""
    host = settings.hub_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.hub_port}/"


@dataclass
class Child:
    """One supervised process and how its output is labelled."""

    name: str
    argv: list[str]
    env: dict[str, str]
    colour: str
    process: asyncio.subprocess.Process | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the child's whole process group (it and anything it started)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


class DevSupervisor:
    """Runs Redis, the hub and `workers` simulation workers until a signal or a crash."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        workers: int = 2,
        console: Console | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.grace = grace
        self.children: list[Child] = []
        self._stop = asyncio.Event()
        self._stopping = False
        self.exit_code = 0

    def say(self, line: str, style: str = "bold") -> None:
        """A line from the supervisor itself."""
        self.emit("dev", line, style)

    def emit(self, process: str, line: str, style: str) -> None:
        """One line of merged output, labelled with the process it came from.

        Console format: `   worker-1 | <line>`. JSON format (`EMPQ_LOG_FORMAT=json`):
        one object per line with a `process` key, so machines can still parse it.
        """
        if self.settings.log_format == "json":
            self.console.out(json.dumps(_json_record(process, line)), highlight=False)
        else:
            self.console.print(Text.assemble((process.rjust(10) + " | ", style), line))

    async def run(self) -> int:
        """Start everything, relay logs, and stop cleanly; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            with embedded_redis(self.settings) as redis_url:
                self.say(f"Redis at {redis_url}")
                try:
                    await self._run_children(redis_url)
                finally:
                    # children are still alive here only if the supervisor itself failed
                    for child in self.children:
                        if child.running:
                            child.signal_group(signal.SIGKILL)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        self.say("stopped" if self.exit_code == 0 else f"stopped (exit {self.exit_code})")
        return self.exit_code

    def _on_signal(self) -> None:
        # the first signal only records the wish; the shutdown runs in the supervisor's
        # task. A second one means "now": skip the grace period.
        if self._stopping:
            self.say("second signal: killing everything now", "bold red")
            for child in self.children:
                child.signal_group(signal.SIGKILL)
        self._stop.set()

    def _env(self, redis_url: str) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            EMPQ_REDIS_URL=redis_url,
            EMPQ_HUB_HOST=s.hub_host,
            EMPQ_HUB_PORT=str(s.hub_port),
            EMPQ_WS_PORT=str(s.ws_port),
            EMPQ_DATA_DIR=str(s.data_dir),
            EMPQ_KEY_PREFIX=s.key_prefix,
            EMPQ_LOG_LEVEL=s.log_level,
            EMPQ_LOG_FORMAT=s.log_format,
            PYTHONUNBUFFERED="1",
        )
        if "artifact_dir" in s.model_fields_set:
            env["EMPQ_ARTIFACT_DIR"] = str(s.artifact_dir)
        elif "EMPQ_ARTIFACT_DIR" not in os.environ:
            env["EMPQ_ARTIFACT_DIR"] = str(s.data_dir / "artifacts")
        if s.api_keys:
            env["EMPQ_API_KEYS"] = ",".join(s.api_keys)
        return env

    async def _run_children(self, redis_url: str) -> None:
        env = self._env(redis_url)
        cli = [sys.executable, "-m", "empq.cli.main"]
        ws_host = (
            "127.0.0.1" if self.settings.hub_host in ("0.0.0.0", "::") else self.settings.hub_host
        )
        async with asyncio.TaskGroup() as tasks:
            hub = Child("hub", [*cli, "hub"], env, "bright_white")
            await self._start(hub, tasks)
            if await self._hub_ready(hub):
                for n in range(1, self.workers + 1):
                    worker_env = dict(env)
                    worker_env.setdefault("EMPQ_CONNECTORS", "simulation")
                    worker_env["EMPQ_HUB_URL"] = f"ws://{ws_host}:{self.settings.ws_port}"
                    worker_env["EMPQ_WORKER_ID"] = f"dev-worker-{n}"
                    # running jobs must finish or be handed back before the supervisor's
                    # grace period ends and it kills what is left
                    worker_env.setdefault("EMPQ_SHUTDOWN_GRACE", str(max(1.0, self.grace / 2)))
                    colour = _COLOURS[(n - 1) % len(_COLOURS)]
                    await self._start(
                        Child(f"worker-{n}", [*cli, "worker"], worker_env, colour), tasks
                    )
                await self._workers_registered()
                url = dashboard_url(self.settings)
                if self.settings.log_format == "json":
                    self.say(f"empq dev is running. Dashboard: {url}")
                else:
                    self.console.print(
                        Text.assemble(
                            ("empq dev is running. Dashboard: ", "bold green"),
                            (url, "bold underline"),
                            ("   (Ctrl-C stops everything)", "dim"),
                        )
                    )
            await self._stop.wait()
            await self._shutdown()

    async def _start(self, child: Child, tasks: asyncio.TaskGroup) -> None:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=child.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            limit=_LINE_LIMIT,
        )
        self.children.append(child)
        self.say(f"started {child.name} (pid {child.process.pid})")
        tasks.create_task(self._relay(child), name=f"relay-{child.name}")

    async def _relay(self, child: Child) -> None:
        """Copy the child's output, prefixed; then note how it ended."""
        assert child.process is not None
        assert child.process.stdout is not None
        stdout = child.process.stdout
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:  # one line above the reader's limit: asyncio drops it
                self.emit(child.name, "[a line over 1 MiB was dropped]", child.colour)
                continue
            if not raw:
                break
            self.emit(child.name, raw.decode(errors="replace").rstrip(), child.colour)
        code = await child.process.wait()
        child.done.set()
        if not self._stopping:
            self.say(f"{child.name} exited unexpectedly with code {code}; stopping", "bold red")
            self.exit_code = 1
            self._stop.set()

    async def _hub_ready(self, hub: Child) -> bool:
        """Wait until the hub answers `/ready`; False if it died or we were told to stop."""
        url = self._api_url("/ready")
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=1.0) as http:
            while asyncio.get_running_loop().time() < deadline:
                if self._stop.is_set() or hub.done.is_set():
                    return False
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).status_code == 200:
                        return True
                # polling a child's port: there is no event to wait on across processes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)
        self.say(f"hub did not answer {url} within {READY_TIMEOUT:g}s; stopping", "bold red")
        self.exit_code = 1
        self._stop.set()
        return False

    def _api_url(self, path: str) -> str:
        host = self.settings.hub_host
        if host in ("0.0.0.0", "::", "localhost"):
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.hub_port}{path}"

    async def _workers_registered(self) -> None:
        """Wait (a while) until every dev worker shows in `/api/workers`.

        Only then is the dashboard URL printed, so a job submitted right after it
        finds its worker instead of a "no workers are registered" warning.
        """
        wanted = {f"dev-worker-{n}" for n in range(1, self.workers + 1)}
        if not wanted:
            return
        keys = self.settings.api_keys
        headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=1.0, headers=headers) as http:
            while loop.time() < deadline and not self._stop.is_set():
                with contextlib.suppress(httpx.TransportError, ValueError):
                    reply = await http.get(self._api_url("/api/workers"))
                    seen = {w.get("worker_id") for w in reply.json().get("workers", [])}
                    if wanted <= seen:
                        return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)
        if not self._stop.is_set():
            self.say(f"not every worker registered within {READY_TIMEOUT:g}s", "bold yellow")

    async def _shutdown(self) -> None:
        """Workers first (they hand jobs back), then the hub; TERM, grace, then KILL."""
        self._stopping = True
        self.say("stopping ...")
        workers = [c for c in self.children if c.name != "hub"]
        hubs = [c for c in self.children if c.name == "hub"]
        for group in (workers, hubs):
            await self._stop_group(group)

    async def _stop_group(self, children: list[Child]) -> None:
        for child in children:
            if child.running:
                child.signal_group(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace):
                await asyncio.gather(*(c.done.wait() for c in children if c.process is not None))
        for child in children:
            if child.running:
                self.say(
                    f"{child.name} ignored SIGTERM for {self.grace:g}s; killing it", "bold red"
                )
            # the group may hold grandchildren even after its leader exited
            child.signal_group(signal.SIGKILL)
            if child.process is not None:
                await child.process.wait()


def run_dev(settings: HubSettings, *, workers: int = 2) -> int:
    """`empq dev`: run until Ctrl-C; returns the exit code."""
    if workers < 0:
        raise EmpqError("--workers must be 0 or more")
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(DevSupervisor(settings, workers=workers).run())
