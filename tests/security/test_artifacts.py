"""Artifacts served safely (docs/security.md): safe types only, nosniff, CSP, downloads
for the rest, a size limit checked up front and while streaming, nothing left by a
cut-off upload, no symbolic link followed. Issue 25 hole 5."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker


@asynccontextmanager
async def held_job(hub: HubHandle) -> AsyncIterator[tuple[httpx.AsyncClient, str, str, RawPeer]]:
    """(http client, job id, claim token, worker) for a job a raw worker holds."""
    async with hub.client() as http, raw_worker(hub.ws_url, f"w-{uuid.uuid4().hex[:6]}") as w:
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        token = (await w.request({"type": "claim_job"}, "job_assigned"))["claim_token"]
        yield http, job_id, token, w


class _LogSeen(logging.Handler):
    """Sets `seen` when a record whose message holds `text` is logged (from any thread)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.seen.set)


def _leftovers(hub: HubHandle, job_id: str) -> list[str]:
    folder = hub.settings.artifact_dir / job_id
    return sorted(p.name for p in folder.iterdir() if p.name != ".meta") if folder.exists() else []


CASES = [
    # name, uploader's type, served type, inline
    ("page.html", "text/html", "application/octet-stream", False),
    ("logo.svg", "image/svg+xml", "application/octet-stream", False),
    ("app.js", "application/javascript", "application/octet-stream", False),
    ("x.png", "text/html; charset=utf-8", "application/octet-stream", False),
    ("out.png", "image/png", "image/png", True),
    ("clip.mp4", "video/mp4", "video/mp4", True),
    ("log.txt", "text/plain", "text/plain; charset=utf-8", True),
    ("data.json", "application/json", "application/json", True),
    ("guess.html", None, "application/octet-stream", False),
    ("guess.png", None, "image/png", True),
]


async def test_artifacts_are_served_with_safe_types_and_headers(hub: HubHandle) -> None:
    async with held_job(hub) as (http, job_id, token, _w):
        for name, uploaded, served, inline in CASES:
            url = f"/api/jobs/{job_id}/artifacts/{name}"
            headers = {"X-EMPQ-Claim-Token": token}
            if uploaded:
                headers["content-type"] = uploaded
            body = b"<html><script>alert(1)</script></html>"
            assert (await http.put(url, content=body, headers=headers)).status_code == 201
            got = await http.get(url)
            assert got.status_code == 200
            assert got.content == body
            assert got.headers["content-type"] == served, name
            assert got.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'none'" in got.headers["content-security-policy"]
            assert "sandbox" in got.headers["content-security-policy"]
            disposition = got.headers["content-disposition"]
            assert disposition.startswith("inline" if inline else "attachment"), name
            assert f'filename="{name}"' in disposition


async def test_upload_past_the_limit_is_413_and_leaves_nothing(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(artifact_max_bytes=1000) as hub,
        held_job(hub) as (http, job_id, token, _),
    ):
        url = f"/api/jobs/{job_id}/artifacts/big.bin"
        headers = {"X-EMPQ-Claim-Token": token}
        r = await http.put(url, content=b"x" * 1001, headers=headers)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "ARTIFACT_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length
            for _ in range(50):
                yield b"y" * 100

        r = await http.put(url, content=chunks(), headers=headers)
        assert r.status_code == 413
        assert (await http.get(url)).status_code == 404
        assert _leftovers(hub, job_id) == []
        ok = await http.put(url, content=b"z" * 1000, headers=headers)
        assert ok.status_code == 201


async def _raw_put(hub: HubHandle, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """Send a PUT by hand (a declared length the body need not match); the reply, if any."""
    host = urlsplit(hub.http_url)
    reader, writer = await asyncio.open_connection(host.hostname, host.port)
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), 2.0)
    except TimeoutError:
        return b""
    finally:
        writer.close()


async def test_declared_length_past_the_limit_is_refused_before_the_body(
    hub_factory: HubFactory,
) -> None:
    async with (
        hub_factory(artifact_max_bytes=1000) as hub,
        held_job(hub) as (_http, job_id, token, _),
    ):
        path = f"/api/jobs/{job_id}/artifacts/huge.bin"
        reply = await _raw_put(
            hub, path, {"Content-Length": str(2 * 1024**3), "X-EMPQ-Claim-Token": token}, b""
        )
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert _leftovers(hub, job_id) == []


async def test_cut_off_upload_leaves_no_file_and_no_traceback(
    hub: HubHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with held_job(hub) as (http, job_id, token, _):
        path = f"/api/jobs/{job_id}/artifacts/cut.bin"
        headers = {"Content-Length": "100000", "X-EMPQ-Claim-Token": token}
        host = urlsplit(hub.http_url)
        _reader, writer = await asyncio.open_connection(host.hostname, host.port)
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(head.encode() + b"\r\n" + b"a" * 5000)
        await writer.drain()
        deadline = time.monotonic() + 5
        while not any(p.endswith(".part") for p in _leftovers(hub, job_id)):
            assert time.monotonic() < deadline, "the upload never started"
            await asyncio.sleep(0.01)
        noticed = _LogSeen("cut off")
        logging.getLogger().addHandler(noticed)
        try:
            writer.close()  # cut off part-way
            await asyncio.wait_for(noticed.seen.wait(), 5)  # the hub noticed the cut-off
        finally:
            logging.getLogger().removeHandler(noticed)
        assert _leftovers(hub, job_id) == []
        assert (await http.get(path)).status_code == 404
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_no_symbolic_link_is_followed(hub: HubHandle, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    root = hub.settings.artifact_dir
    root.mkdir(parents=True, exist_ok=True)
    # A job folder that is a link out of the artifact folder: nothing served through it.
    os.symlink(outside, root / "linkedjob")
    async with hub.client() as http:
        assert (await http.get("/api/jobs/linkedjob/artifacts/secret.txt")).status_code == 404
    async with held_job(hub) as (http, job_id, token, _):
        # A file that is a link: not served, and an upload replaces the link, never
        # writing through it.
        (root / job_id).mkdir(exist_ok=True)
        os.symlink(outside / "secret.txt", root / job_id / "out.txt")
        url = f"/api/jobs/{job_id}/artifacts/out.txt"
        assert (await http.get(url)).status_code == 404
        r = await http.put(url, content=b"new", headers={"X-EMPQ-Claim-Token": token})
        assert r.status_code == 201
        assert (outside / "secret.txt").read_text() == "not yours"
        assert not (root / job_id / "out.txt").is_symlink()
        assert (await http.get(url)).content == b"new"
    # A job folder that is a link, and the job is real: the upload is refused.
    async with held_job(hub) as (http, job_id, token, _):
        os.symlink(outside, root / job_id)
        url = f"/api/jobs/{job_id}/artifacts/planted.txt"
        r = await http.put(url, content=b"x", headers={"X-EMPQ-Claim-Token": token})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "UNSAFE_ARTIFACT_PATH"
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
