"""Config errors are one line naming the setting; no secret reaches a log line.
Issue 25 holes 4 and 6 (malformed EMPQ_REDIS_URL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from tests.cli.support import run_empq
from tests.support.hub_fixtures import HubProcess, RawPeer

BAD_URLS = [
    "redis://localhost:notaport/0",
    "foo://localhost:6379",
    "redis://:secretpw@/0",
    "redis://host:99999",
    "localhost:6379",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_redis_url_is_one_line_naming_the_setting(url: str) -> None:
    env = {"EMPQ_REDIS_URL": url, "EMPQ_HUB_PORT": "0", "EMPQ_WS_PORT": "0"}
    # `python -m empq.hub` (what the tests' hub processes run) reads settings the same way.
    runs = [_cli(env), _python_m_hub(env)] if url == BAD_URLS[0] else [_cli(env)]
    for result in runs:
        assert result[0] != 0
        lines = result[1].strip().splitlines()
        assert len(lines) == 1, result[1]
        assert "EMPQ_REDIS_URL" in lines[0]
        assert "Traceback" not in result[1]
        assert "secretpw" not in result[1]


def _cli(env: dict[str, str]) -> tuple[int, str]:
    result = run_empq("hub", env=env)
    return result.code, result.err


def _python_m_hub(env: dict[str, str]) -> tuple[int, str]:
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "empq.hub"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=30,
        check=False,
    )
    return proc.returncode, proc.stderr


def test_unreachable_redis_is_one_line_naming_the_setting() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    env = {
        "EMPQ_REDIS_URL": "redis://:pw-secret@127.0.0.1:1/0",
        "EMPQ_HUB_PORT": "0",
        "EMPQ_WS_PORT": "0",
    }
    for code, err in (_cli(env), _python_m_hub(env)):
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "cannot reach Redis" in lines[0]
        assert "EMPQ_REDIS_URL" in lines[0]
        assert "pw-secret" not in err


def test_bad_worker_token_entry_is_one_line_without_the_token() -> None:
    code, err = _python_m_hub(
        {"EMPQ_WORKER_TOKENS": "s3cret-value:pool=gpu", "EMPQ_HUB_PORT": "0", "EMPQ_WS_PORT": "0"}
    )
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "EMPQ_WORKER_TOKENS" in err
    assert "s3cret-value" not in err


async def test_no_key_or_token_in_the_hub_log(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]],
) -> None:
    """Hole 4: keys in query strings were logged verbatim by uvicorn. Run a hub at debug
    level (every upgrade line, every frame the websockets library logs), use every
    credential every way it can be sent, and grep the hub's whole log."""
    key, token, wrong = "KEY-ab12cd34", "TOKEN-ef56gh78", "WRONG-ij90kl12"
    env = {
        "EMPQ_API_KEYS": key,
        "EMPQ_WORKER_TOKENS": f"{token}:worker=w-*",
        "EMPQ_LOG_LEVEL": "debug",
    }
    async with hub_process(**env) as hub:
        for query in (f"?token={key}", f"?api_key={key}", f"?token={wrong}", f"/?x=1&token={key}"):
            url = (
                hub.ws_url + query.lstrip("/")
                if not query.startswith("/")
                else hub.ws_url[:-1] + query
            )
            async with RawPeer.connect(url) as peer:
                await peer.request(
                    {"type": "request_stats"}, "stats_broadcast" if wrong not in query else "error"
                )
        async with RawPeer.connect(
            hub.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
        ) as peer:
            await peer.request({"type": "register_client", "api_key": key}, "client_registered")
        async with RawPeer.connect(hub.ws_url) as peer:
            await peer.request({"type": "register_client", "api_key": wrong}, "error")
        async with RawPeer.connect(hub.ws_url) as peer:
            await peer.request(
                {"type": "register_worker", "worker_id": "w-1", "auth_token": token},
                "worker_registered",
            )
        async with httpx.AsyncClient(base_url=hub.http_url) as http:
            for credential in (key, wrong, token):
                headers = {"Authorization": f"Bearer {credential}"}
                await http.get(f"/api/jobs?token={credential}", headers=headers)
            ws_on_rest = hub.http_url.replace("http", "ws") + f"/ws?token={key}"
            async with RawPeer.connect(ws_on_rest) as peer:
                await peer.request({"type": "ping"}, "pong")
    log = hub.log_path.read_text()
    assert "WebSocket" in log  # the upgrade lines are there...
    assert "token=***" in log  # ...with the key masked
    for secret in (key, token, wrong):
        assert secret not in log, [line for line in log.splitlines() if secret in line]
