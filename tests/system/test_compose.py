"""The image and deploy/compose.yaml, built and run with podman as setup.sh prepares it.

The stack (with compose.override.yaml: Redis and HAProxy from Debian packages, since no
registry is reachable here) takes 200 jobs through the balancer while one hub
container is SIGKILLed; all 200 complete, each run once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from empq.redis_server import free_port
from tests.system.containers import DEPLOY, ROOT, ComposeProject, Podman, podman_here
from tests.system.support import (
    completed_count,
    job_states,
    report,
    sim_jobs,
    stats_of,
    submit_all,
    until,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(1500)]

JOBS = 200
WORKERS = 3


@pytest.fixture(scope="module")
def images() -> Iterator[tuple[Podman, dict[str, str]]]:
    """The three images, built once for this module: tag by role."""
    podman = podman_here()
    tag = os.environ.get("EMPQ_TEST_IMAGE_TAG", "systemtest")
    tags = {
        "empq": f"localhost/empq:{tag}",
        "embedded": f"localhost/empq-embedded:{tag}",
        "redis": f"localhost/empq-redis:{tag}",
        "haproxy": f"localhost/empq-haproxy:{tag}",
    }
    podman.build(tags["empq"], ROOT, ROOT / "Dockerfile")
    for role in ("redis", "haproxy"):
        podman.build(tags[role], DEPLOY / "images", DEPLOY / "images" / f"{role}.Containerfile")
    return podman, tags


def _inspect(podman: Podman, image: str) -> dict[str, Any]:
    done = podman.run("image", "inspect", image)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found


def test_the_image_runs_as_a_user_with_a_health_check_and_empq_on_path(
    images: tuple[Podman, dict[str, str]],
) -> None:
    podman, tags = images
    meta = _inspect(podman, tags["empq"])
    check = " ".join((meta.get("Healthcheck") or {}).get("Test") or [])
    assert "/health" in check, f"no HEALTHCHECK on /health (built without --format docker?): {meta}"
    assert meta["Config"]["User"] == "empq"
    assert meta["Config"]["Cmd"] == ["empq", "hub"]
    done = podman.run("run", "--rm", tags["empq"], "sh", "-c", "id -u; empq --help")
    assert done.returncode == 0, done.stderr
    uid, _, help_text = done.stdout.partition("\n")
    assert uid != "0"
    assert "worker" in help_text
    assert "hub" in help_text


async def test_empq_dev_runs_in_one_container_from_the_embedded_target(
    images: tuple[Podman, dict[str, str]],
) -> None:
    podman, tags = images
    build = podman.run(
        "build", *podman.build_flags, "--build-arg", f"BASE_IMAGE={podman.base_image}",
        "--target", "embedded", "-t", tags["embedded"], "-f", str(ROOT / "Dockerfile"), str(ROOT),
        timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    # Containers here share the host's network (setup.sh): free ports, not 3001/3002.
    rest, ws = free_port(), free_port()
    name = f"empq-dev-{uuid.uuid4().hex[:6]}"
    run = podman.run(
        "run", "-d", "--name", name, "-e", f"EMPQ_HUB_PORT={rest}", "-e", f"EMPQ_WS_PORT={ws}",
        tags["embedded"],
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest}", timeout=5) as http:

            async def two_workers() -> bool:
                stats = await stats_of(http)
                return isinstance(stats, dict) and stats["stats"].get("workers_connected") == 2

            await until(
                two_workers, 90, "empq dev's hub and its 2 workers", lambda: _logs(podman, name)
            )
            reply = await http.post(
                "/api/jobs", json={"type": "demo", "requirements": {"service_type": "simulation"}}
            )
            assert reply.status_code == 201, reply.text
            job_id = reply.json()["job_id"]

            async def completed() -> bool:
                return (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"

            await until(completed, 60, "the job completing")
        health = podman.run("healthcheck", "run", name)
        assert health.returncode == 0, f"HEALTHCHECK failed: {health.stdout}{health.stderr}"
    finally:
        podman.run("rm", "-f", "-t", "10", name)


async def _logs(podman: Podman, name: str) -> str:
    done = podman.run("logs", "--tail", "40", name)
    return done.stdout + done.stderr


async def _runs(podman: Podman, container: str) -> float:
    """Jobs the worker in `container` ran to completion (its /metrics, inside the container)."""
    script = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:9100/metrics', timeout=5).read().decode())"
    )
    done = await asyncio.to_thread(podman.run, "exec", container, "python3", "-c", script)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        if line.startswith('empq_worker_jobs_total{outcome="completed"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_compose_stack_completes_200_jobs_once_while_a_hub_is_killed(
    images: tuple[Podman, dict[str, str]],
) -> None:
    podman, tags = images
    started = time.monotonic()
    rest, ws = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        EMPQ_IMAGE=tags["empq"],
        EMPQ_REDIS_IMAGE=tags["redis"],
        EMPQ_HAPROXY_IMAGE=tags["haproxy"],
        EMPQ_LB_REST_PORT=str(rest),
        EMPQ_LB_WS_PORT=str(ws),
        EMPQ_PUBLIC_URL=f"http://127.0.0.1:{rest}",
        BASE_IMAGE=podman.base_image,
    )
    project = ComposeProject(podman, f"empqtest{uuid.uuid4().hex[:6]}", env)
    try:
        project.up("--scale", f"worker={WORKERS}")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest}", timeout=10) as http:

            async def ready() -> bool:
                stats = await stats_of(http)
                return (
                    isinstance(stats, dict) and stats["stats"].get("workers_connected") == WORKERS
                )

            await until(
                ready, 120, f"the balancer, both hubs and {WORKERS} workers", _async(project.logs)
            )
            for hub in ("hub1", "hub2"):
                # Workers may all be on one hub while the other is still starting (the
                # HEALTHCHECK's start period): the kill below must find both serving.
                await until(
                    _healthy(podman, project.container(hub)),
                    60,
                    f"{hub}'s HEALTHCHECK passing",
                    _async(project.logs),
                )

            jobs = sim_jobs(JOBS, project.name, duration=0.5)
            ids, retried = await submit_all(http, jobs[: JOBS // 2])
            await until(lambda: _ge(completed_count(http), 30), 120, "jobs completing")
            killed_at = time.monotonic()
            kill = podman.run("kill", "--signal", "KILL", project.container("hub1"))
            assert kill.returncode == 0, kill.stderr
            more, again = await submit_all(http, jobs[JOBS // 2 :])
            ids += more
            retried += again
            await until(
                lambda: _ge(completed_count(http), JOBS),
                240,
                f"{JOBS} jobs completed",
                lambda: stats_of(http),
            )
            states = await job_states(http, ids)
            runs = sum(
                [await _runs(podman, project.container("worker", i)) for i in range(1, WORKERS + 1)]
            )
        lost = sum(1 for j in ids if states.get(j, {}).get("status") != "completed")
        report(
            "compose",
            jobs=JOBS,
            hubs=2,
            workers=WORKERS,
            kills=1,
            lost=lost,
            double=int(runs) - JOBS,
            submit_retries=retried,
            seconds_after_kill=round(time.monotonic() - killed_at, 1),
            seconds=round(time.monotonic() - started, 1),
        )
        assert len(set(ids)) == JOBS
        assert lost == 0
        assert int(runs) == JOBS, f"{runs} runs for {JOBS} jobs"
    finally:
        project.down()


def _healthy(podman: Podman, container: str) -> Any:
    async def check() -> bool:
        run = await asyncio.to_thread(podman.run, "healthcheck", "run", container)
        return run.returncode == 0

    return check


def _async(fn: Any) -> Any:
    async def call() -> Any:
        return await asyncio.to_thread(fn)

    return call


async def _ge(count: Any, than: int) -> bool:
    return int(await count) >= than
