"""Upload a job's output files to the hub's artifact store (never inline in results)."""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from empq.errors import ConnectorError

#: Replies that mean "the hub is briefly unable", worth another try.
_TRANSIENT = frozenset({502, 503, 504})


def derive_http_url(ws_url: str) -> str:
    """The hub's REST base guessed from its WebSocket URL.

    `/ws` on a port means the REST port itself; otherwise the CONTRACT's default
    REST port 3001 on the same host.
    """
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    if parts.path.rstrip("/").endswith("/ws") and parts.port:
        netloc = f"{host}:{parts.port}"
    else:
        netloc = f"{host}:3001"
    return urlunsplit((scheme, netloc, "", "", ""))


class HubArtifacts:
    """The `ArtifactSink` of one assigned job: `PUT /api/jobs/{id}/artifacts/{name}`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        job_id: str,
        claim_token: str,
        *,
        worker_token: str | None = None,
        retry_for: float = 60.0,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.job_id = job_id
        self.claim_token = claim_token
        self.worker_token = worker_token
        self.retry_for = retry_for
        self.urls: list[str] = []

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Store the file under the job's claim; returns the URL clients fetch it from.

        A PUT of the same bytes is idempotent, so a hub that is briefly away (restart,
        503) is retried with jittered back-off for up to `retry_for` seconds rather
        than failing a job whose work is already done.
        """
        job, file = quote(self.job_id, safe=""), quote(name, safe="")
        url = f"{self.base_url}/api/jobs/{job}/artifacts/{file}"
        headers = {"Content-Type": content_type, "X-EMPQ-Claim-Token": self.claim_token}
        if self.worker_token:
            headers["Authorization"] = f"Bearer {self.worker_token}"
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                response = await self.client.put(url, content=data, headers=headers)
            except httpx.HTTPError as exc:
                if time.monotonic() + delay > deadline:
                    raise ConnectorError(
                        f"uploading artifact {name!r} of job {self.job_id} failed: {exc}",
                        error_type="artifact_upload_failed",
                        retryable=True,
                    ) from exc
            else:
                if response.status_code not in _TRANSIENT or time.monotonic() + delay > deadline:
                    return self._stored(name, response)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 5.0)

    def _stored(self, name: str, response: httpx.Response) -> str:
        if response.status_code == 409:
            raise ConnectorError(
                f"job {self.job_id} is no longer held by this worker (artifact {name!r} refused)",
                error_type="stale_claim",
                retryable=False,
            )
        if response.status_code != 201:
            raise ConnectorError(
                f"hub refused artifact {name!r} of job {self.job_id}: HTTP {response.status_code}",
                error_type="artifact_upload_failed",
                retryable=response.status_code >= 500,
                details={"status_code": response.status_code, "body": response.text[:1000]},
            )
        try:
            stored = str(response.json()["url"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorError(
                f"hub's artifact reply for {name!r} has no url",
                error_type="artifact_upload_failed",
                retryable=True,
            ) from exc
        self.urls.append(stored)
        return stored
