"""The client commands against a real hub: output, JSON and exit codes.

The core paths (submit, status, watch) run the installed `empq` script in a
subprocess, as a user would; the other commands run the same entry point
(`empq.cli.main.run`) in a thread of this process, which keeps the suite fast.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from empq.cli.main import run
from empq.sdk import AsyncClient
from tests.cli.support import Result, empq_argv
from tests.sdk import scripted
from tests.support.hub_fixtures import HubFactory, HubHandle, raw_worker

SIM = {"service_type": "simulation"}
InProc = Callable[..., Awaitable[Result]]


async def empq(*args: str, env: dict[str, str] | None = None, within: float = 30) -> Result:
    """Run `empq ARGS...` without blocking the event loop the hub runs in."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    full_env.update({"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    proc = await asyncio.create_subprocess_exec(
        *empq_argv(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def inproc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> InProc:
    """`await inproc(ARGS...)`: the CLI in a worker thread (the hub keeps this loop)."""
    for name in [k for k in os.environ if k.startswith("EMPQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")

    async def call(*args: str, env: dict[str, str] | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = await asyncio.to_thread(run, list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def one_json(result: Result) -> Any:
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.fixture
async def client(hub: HubHandle) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(hub.http_url, poll_interval=2.0) as c:
        yield c


async def test_submit_json_then_status_json(hub: HubHandle, inproc: InProc, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"scale": 4}')
    submitted = one_json(
        await empq(
            "submit", "--hub", hub.http_url, "--type", "upscale", "--service", "simulation",
            "--priority", "70", "--payload", f"@{payload}", "--customer", "acme", "--json",
        )
    )  # fmt: skip
    assert submitted["status"] == "queued"
    assert submitted["position"] == 1
    assert submitted["job_id"] == submitted["id"]
    shown = one_json(await inproc("status", submitted["id"], "--hub", hub.http_url, "--json"))
    assert shown["id"] == submitted["id"]
    assert shown["priority"] == 70
    assert shown["payload"] == {"scale": 4}
    assert shown["customer_id"] == "acme"
    assert shown["requirements"]["service_type"] == "simulation"


async def test_submit_prints_the_id_and_warns_when_no_worker_fits(
    hub: HubHandle, inproc: InProc
) -> None:
    result = await inproc("submit", "--hub", hub.http_url, "--type", "t", "--service", "simulation")
    assert result.code == 0
    assert "queued at position 1" in result.out
    assert "warning:" in result.err


async def test_status_of_unknown_job_is_one_line_and_exit_1(hub: HubHandle, inproc: InProc) -> None:
    result = await inproc("status", "nope", "--hub", hub.http_url)
    assert result.code == 1
    assert result.err.strip() == "empq: job 'nope' not found"


async def test_watch_ends_0_with_result_and_artifacts(hub: HubHandle, client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM)
    watcher = asyncio.ensure_future(empq("watch", job.id, "--hub", hub.http_url))
    artifact = f"{hub.http_url}/api/jobs/{job.id}/artifacts/out.png"
    async with raw_worker(hub.ws_url, "gpu-7") as peer:
        assigned = await scripted.take_job(peer)
        await scripted.progress(peer, assigned, 50, "halfway")
        await scripted.complete(peer, assigned, {"output_files": [artifact], "seed": 3})
        result = await asyncio.wait_for(watcher, 30)
    assert result.code == 0, result.err
    assert f"job {job.id} completed" in result.out
    assert artifact in result.out
    assert '"seed": 3' in result.out


async def test_watch_ends_1_when_the_job_fails(hub: HubHandle, client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM, max_retries=0)
    async with raw_worker(hub.ws_url, "gpu-7") as peer:
        assigned = await scripted.take_job(peer)
        watcher = asyncio.ensure_future(empq("watch", job.id, "--hub", hub.http_url))
        await scripted.fail(peer, assigned, "CUDA out of memory", retry=False)
        result = await asyncio.wait_for(watcher, 30)
    assert result.code == 1
    assert "failed" in result.out
    assert "CUDA out of memory" in result.out


async def test_watch_json_streams_snapshots_until_cancelled(
    hub: HubHandle, client: AsyncClient
) -> None:
    job = await client.submit(type="render", requirements=SIM)
    proc = await asyncio.create_subprocess_exec(
        *empq_argv(), "watch", job.id, "--hub", hub.http_url, "--json",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
    assert first["status"] == "queued"
    await client.cancel(job.id)
    rest = (await asyncio.wait_for(proc.stdout.read(), 15)).decode().splitlines()
    assert await proc.wait() == 1  # cancelled is not success
    assert json.loads(rest[-1])["status"] == "cancelled"


async def test_watch_timeout_exits_1(hub: HubHandle, client: AsyncClient, inproc: InProc) -> None:
    job = await client.submit(type="render", requirements=SIM)
    result = await inproc("watch", job.id, "--timeout", "0.5", "--hub", hub.http_url)
    assert result.code == 1
    assert "still queued" in result.err


async def test_cancel_and_retry(hub: HubHandle, client: AsyncClient, inproc: InProc) -> None:
    job = await client.submit(type="render", requirements=SIM)
    cancelled = one_json(await inproc("cancel", job.id, "--hub", hub.http_url, "--json"))
    assert cancelled["status"] == "cancelled"
    again = await inproc("cancel", job.id, "--hub", hub.http_url)
    assert again.code == 1
    assert len(again.err.strip().splitlines()) == 1
    retried = await inproc("retry", job.id, "--hub", hub.http_url)
    assert retried.code == 0
    assert "queued" in retried.out


async def test_jobs_table_filters_and_json(
    hub: HubHandle, client: AsyncClient, inproc: InProc
) -> None:
    mine = await client.submit(type="render", customer_id="acme")
    other = await client.submit(type="upscale", customer_id="globex")
    listed = one_json(await inproc("jobs", "--customer", "acme", "--hub", hub.http_url, "--json"))
    assert [j["id"] for j in listed["jobs"]] == [mine.id]
    table = await inproc("jobs", "--hub", hub.http_url)
    assert table.code == 0
    assert mine.id in table.out
    assert other.id in table.out
    assert "queued" in table.out
    empty = await inproc("jobs", "--status", "completed", "--hub", hub.http_url)
    assert "no jobs" in empty.out


async def test_workers_stats_and_explain(
    hub: HubHandle, client: AsyncClient, inproc: InProc
) -> None:
    async with raw_worker(hub.ws_url, "gpu-7", {"services": ["comfyui"]}):
        job = await client.submit(type="render", requirements=SIM)
        workers = one_json(await inproc("workers", "--hub", hub.http_url, "--json"))
        assert [w["worker_id"] for w in workers["workers"]] == ["gpu-7"]
        table = await inproc("workers", "--hub", hub.http_url)
        assert "gpu-7" in table.out
        assert "comfyui" in table.out
        stats = one_json(await inproc("stats", "--hub", hub.http_url, "--json"))
        assert stats["jobs_by_status"]["queued"] == 1
        explained = await inproc("explain", job.id, "--hub", hub.http_url)
        as_json = one_json(await inproc("explain", job.id, "--hub", hub.http_url, "--json"))
    assert explained.code == 0
    assert "position 1 in the queue" in explained.out
    rejected_row = next(line for line in explained.out.splitlines() if "gpu-7" in line)
    assert "simulation" in rejected_row, "the reason names what the worker lacks"
    assert as_json["rejected_workers"][0]["worker_id"] == "gpu-7"


async def test_explain_dry_run_and_status_show_position_and_eta(
    hub: HubHandle, client: AsyncClient, inproc: InProc
) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["m"]}}
    async with raw_worker(hub.ws_url, "warm-1", caps, models_loaded={"simulation": ["m"]}):
        await client.submit(type="render", requirements=SIM)
        reqs = json.dumps({"models": ["m"]})
        args = ["explain", "--dry-run", "--type", "t", "--service", "simulation"]
        dry = await inproc(*args, "--requirements", reqs, "--hub", hub.http_url)
        as_json = one_json(
            await inproc(*args, "--requirements", reqs, "--hub", hub.http_url, "--json")
        )
        queued = await client.submit(type="render", requirements={"service_type": "nothing"})
        status = await inproc("status", queued.id, "--hub", hub.http_url)
    assert dry.code == 0, dry.err
    assert "would queue at position 2" in dry.out
    assert "warm-1 (warm)" in dry.out
    assert as_json["position"] == 2
    assert as_json["matching_workers"][0]["warm"] is True
    # Nothing was stored by the dry runs: only the two submitted jobs exist.
    assert len((await client.jobs()).jobs) == 2
    assert "no ETA (no connected worker can run this job)" in status.out
    missing = await inproc("explain", "--dry-run", "--hub", hub.http_url)
    assert missing.code != 0
    assert "--type" in missing.err


async def test_api_key_from_flag_or_environment(hub_factory: HubFactory, inproc: InProc) -> None:
    async with hub_factory(api_keys=["k-1"]) as h:
        refused = await inproc("jobs", "--hub", h.http_url)
        assert refused.code == 1
        assert "API key" in refused.err
        assert (await inproc("jobs", "--hub", h.http_url, "--api-key", "k-1")).code == 0
        assert (await inproc("jobs", env={"EMPQ_HUB": h.http_url, "EMPQ_API_KEY": "k-1"})).code == 0
