"""Two Debian `redis-server`s (a primary and its replica) watched by three sentinels
(`redis-server CONF --sentinel`: Debian ships no `redis-sentinel` binary of its own).

The servers run with the settings docs/deployment.md recommends for the queue:
append-only file fsynced every second, no RDB snapshots, `noeviction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aredis

from empq.redis_server import find_redis_server, free_port
from tests.support.child_output import ChildOutput

SERVICE = "empq"
DOWN_AFTER_MS = 1000


@dataclass
class Node:
    """One redis-server process (a data server or a sentinel)."""

    port: int
    proc: subprocess.Popen[bytes]
    output: ChildOutput

    def client(self) -> aredis.Redis:
        return aredis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    async def answers(self) -> bool:
        client = self.client()
        try:
            return bool(await client.ping())
        except (aredis.ConnectionError, aredis.TimeoutError, OSError):
            return False
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@dataclass
class SentinelSet:
    """The servers and sentinels; `primary` is whichever the sentinels last named."""

    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The `EMPQ_REDIS_URL` that names this set."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    async def primary_port(self) -> int:
        """The primary's port, as the first sentinel that answers names it."""
        for s in self.sentinels:
            client = s.client()
            try:
                host_port = await client.sentinel_get_master_addr_by_name(SERVICE)
                return int(host_port[1])
            except (aredis.ConnectionError, aredis.TimeoutError, OSError):
                continue
            finally:
                await client.aclose()
        raise AssertionError("no sentinel answers")

    async def ready(self) -> bool:
        """The replica is in sync, and every sentinel knows it and both other sentinels."""
        primary = self.servers[0].client()
        try:
            info = await primary.info("replication")
        finally:
            await primary.aclose()
        if "online" not in str(info.get("slave0", "")):
            return False
        for s in self.sentinels:
            client = s.client()
            try:
                master = await client.sentinel_master(SERVICE)
                if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < 2:
                    return False
            except (aredis.ConnectionError, aredis.TimeoutError, OSError, aredis.ResponseError):
                return False
            finally:
                await client.aclose()
        return True

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.kill()


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


async def _wait(node: Node, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await node.answers():
        if node.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"redis-server on {node.port} did not start:\n{node.output.text()}"
            )
        await asyncio.sleep(0.05)


async def start_sentinel_set(tmp: Path) -> SentinelSet:
    """A primary, one replica and three sentinels (quorum 2), all answering and aware of
    each other."""
    binary = find_redis_server()
    found = SentinelSet()
    try:
        primary_port = 0
        for i in range(2):
            port = free_port()
            data = tmp / f"redis{i}"
            data.mkdir(parents=True)
            args = [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--maxmemory-policy", "noeviction",
            ]  # fmt: skip
            if i == 1:
                args += ["--replicaof", "127.0.0.1", str(primary_port)]
            else:
                primary_port = port
            proc = _start(args)
            node = Node(port, proc, ChildOutput(proc, tmp / f"redis{i}.log"))
            found.servers.append(node)
            await _wait(node)
        for i in range(3):
            port = free_port()
            conf = tmp / f"sentinel{i}.conf"  # sentinel rewrites it: one file each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            proc = _start([binary, str(conf), "--sentinel"])
            node = Node(port, proc, ChildOutput(proc, tmp / f"sentinel{i}.log"))
            found.sentinels.append(node)
            await _wait(node)
        deadline = time.monotonic() + 30
        while not await found.ready():
            assert time.monotonic() < deadline, "sentinels did not find each other in 30 s"
            await asyncio.sleep(0.2)
    except BaseException:
        found.stop()
        raise
    return found
