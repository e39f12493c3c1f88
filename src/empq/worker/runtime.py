"""The worker process: connect, register, pull jobs, run them, survive the hub going away.

Lifecycle (`Worker.run`): start the connectors, then in one task group run the
connection loop, the optional status HTTP server and the jobs themselves. Jobs
belong to the worker, not to a connection, so they keep running while the link is
down and report when it is back. A stop request (SIGTERM/SIGINT, or the `stop`
event) drains: no more claims, running jobs get `shutdown_grace` seconds to finish,
the rest are cancelled at their service and handed back with `release_job`
(attempts unchanged), then a graceful `disconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import httpx

from empq import telemetry
from empq.config import WorkerSettings
from empq.connectors.base import Connector, JobContext
from empq.connectors.registry import create_connectors
from empq.models import WorkerCapabilities
from empq.protocol import (
    ClaimJob,
    ClaimNext,
    Disconnect,
    RegisterWorker,
    UpdateCapabilities,
    WorkerStatusMessage,
)
from empq.status import WorkerStatus
from empq.worker.artifacts import HubArtifacts, derive_http_url
from empq.worker.capabilities import load_capabilities
from empq.worker.connection import (  # re-exported: the reconnect policy's home was here
    connection_loop,
)
from empq.worker.handback import service_changed
from empq.worker.health import HealthMonitor
from empq.worker.hosting import host_connectors
from empq.worker.jobs import PROGRESS_INTERVAL, ActiveJob, JobExecutor
from empq.worker.link import HubLink
from empq.worker.messages import JobAssigned, Welcome
from empq.worker.metrics import WorkerMetrics
from empq.worker.offer import Offer
from empq.worker.session import Session
from empq.worker.watchdog import LoopWatchdog

log = logging.getLogger("empq.worker")

CANCEL_TIMEOUT = 10.0


class Worker:
    """One worker: its connectors, its jobs and its link to the hub."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        capabilities: WorkerCapabilities | None = None,
        connectors: list[Connector] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id
        self.connectors = host_connectors(
            connectors
            if connectors is not None
            else create_connectors(settings.connectors, settings),
            settings.connector_loop,
        )
        self.capabilities = capabilities or load_capabilities(settings)
        self.stop = stop if stop is not None else asyncio.Event()
        self._own_signals = stop is None
        self.link = HubLink()
        self.metrics = WorkerMetrics()
        self.health = HealthMonitor(
            self.connectors,
            settings.heartbeat_interval,
            on_change=lambda state: service_changed(self, state),
        )
        # What the worker has before connectors add theirs; refreshes start from it.
        self.offer = Offer(self.capabilities, self.health)
        self.executor = JobExecutor(
            self.worker_id,
            self.link,
            self.metrics,
            self.next_claim,
            on_service_down=self.service_down,
        )
        self.executor.warmth = self.report_warmth
        #: The `models_loaded` the hub was last sent.
        self._warm_sent: dict[str, list[str]] | None = None
        self.jobs: dict[str, ActiveJob] = {}
        self.draining = False
        self.hub_http_url = settings.hub_http_url
        self.started_at = time.time()
        self.claim_wanted = asyncio.Event()
        #: How long its claims wait on the hub (the hub's `claim_wait_max` may cut it).
        self.claim_wait = 0.0
        #: The current connection's session, while there is one.
        self.session: Session | None = None
        self.registered = asyncio.Event()
        self.registrations = 0
        self.link_changed = asyncio.Condition()
        #: Set while no job runs (a finished job's outcome is already owed by then).
        self.idle = asyncio.Event()
        self.idle.set()
        self._tg: asyncio.TaskGroup | None = None
        self._http: httpx.AsyncClient | None = None
        #: Set by `server_disconnect`: when to reconnect (see `empq.worker.connection`).
        self.reconnect_after: float | None = None
        #: Why the worker must end (a refused token, a bad hub URL).
        self.fatal: BaseException | None = None
        #: Set once the drain is done: the connection loop then stops reconnecting.
        self.closing = False

    # ------------------------------------------------------------------ state
    @property
    def slots(self) -> int:
        """Slots open to claims: `concurrent_jobs`, or 0 while every service is down."""
        if not self.health.any_healthy():
            return 0
        return self.capabilities.performance.concurrent_jobs

    @property
    def connector_status(self) -> dict[str, dict[str, Any]]:
        """Each connector's last health check (see `empq.worker.health`)."""
        return self.health.status()

    @property
    def status(self) -> WorkerStatus:
        if self.draining:
            return WorkerStatus.DRAINING
        return WorkerStatus.BUSY if self.jobs else WorkerStatus.IDLE

    def models_loaded(self) -> dict[str, list[str]]:
        """Every connector's warm models, per service, most recent first."""
        merged: dict[str, list[str]] = {}
        for connector in self.connectors:
            for service, names in connector.models_loaded().items():
                merged[service] = list(dict.fromkeys([*merged.get(service, []), *names]))
        return merged

    async def report_warmth(self) -> None:
        """Tell the hub the warm models if they changed (before a job's outcome, so the
        hub routes the next jobs by them)."""
        loaded = self.models_loaded()
        if loaded == self._warm_sent:
            return
        sent = await self.link.send(
            WorkerStatusMessage(
                type="worker_status",
                worker_id=self.worker_id,
                status=self.status,
                models_loaded=loaded,
            )
        )
        if sent:
            self._warm_sent = loaded

    def held_jobs(self) -> list[str]:
        """Jobs this worker still holds: running, or finished with the outcome unacknowledged."""
        return list(dict.fromkeys([*self.jobs, *self.link.owed_jobs]))

    def describe_running(self) -> str:
        """The running jobs and their connectors, for the blocked-loop warning."""
        jobs = [f"job {j.job_id} on connector {j.connector.name}" for j in list(self.jobs.values())]
        return ", ".join(jobs) or "no job"

    def ready(self) -> bool:
        """Connected, registered and not draining (for orchestrators' `/ready`)."""
        return self.registered.is_set() and self.link.connected and not self.draining

    async def wait_registered(self, after: int = 0) -> None:
        """Until the worker has registered more than `after` times (reconnects count)."""
        async with self.link_changed:
            await self.link_changed.wait_for(lambda: self.registrations > after)

    def request_stop(self) -> None:
        """Begin the graceful shutdown (what SIGTERM does)."""
        self.stop.set()

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run until stopped; returns after a clean drain, raises `AuthError` if refused."""
        loop = asyncio.get_running_loop()
        if self._own_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for connector in self.connectors:
                    await connector.start()
                    stack.push_async_callback(connector.close)
                self._http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
                await self.health.check_all()
                await self.offer.ask(self.connectors)
                self.capabilities = self.offer.current()
                watchdog = LoopWatchdog(loop, self.describe_running)
                watchdog.start()
                stack.callback(watchdog.stop)
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    link_task = tg.create_task(connection_loop(self), name="hub-link")
                    health_task = tg.create_task(self.health.run(), name="health")
                    status_task = None
                    if self.settings.http_port is not None:
                        from empq.worker.status_http import serve_status

                        status_task = tg.create_task(serve_status(self), name="status-http")
                    await self.stop.wait()
                    await self._drain()
                    self.closing = True
                    if self.link.connected:
                        # A normal close (1000) ends the session; the loop then returns.
                        await self.link.close()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(5):
                                await asyncio.shield(link_task)
                    link_task.cancel()
                    health_task.cancel()
                    if status_task is not None:
                        status_task.cancel()
        finally:
            if self._own_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        if self.fatal is not None:
            raise self.fatal

    async def service_down(self, connector: Connector, detail: str) -> None:
        """A job found `connector`'s service down: stop offering it before claiming again."""
        self.health.report_down(connector, detail)
        await self.refresh_capabilities(ask=False)

    async def check_connectors(self) -> dict[str, Any]:
        """Each connector's health as last checked (checks run on their own schedule)."""
        return self.health.status()

    async def refresh_capabilities(self, *, ask: bool = True) -> None:
        """Recompute the capabilities and tell the hub what changed (`update_capabilities`).

        `ask` asks the connectors again, as when a service comes back (a ComfyUI that
        was down at start only now reports its models); without it only the services
        that are down are withdrawn, at once (see `empq.worker.offer`).
        """
        before = self.capabilities.model_dump(mode="json")
        if ask:
            await self.offer.ask(self.connectors)
        self.capabilities = self.offer.current()
        after = self.capabilities.model_dump(mode="json")
        changes = {k: v for k, v in after.items() if before.get(k) != v}
        if changes:
            log.info("capabilities changed: %s", sorted(changes))
            await self.link.send(
                UpdateCapabilities(
                    type="update_capabilities",
                    worker_id=self.worker_id,
                    capability_changes=changes,
                )
            )

    async def _drain(self) -> None:
        self.draining = True
        log.info(
            "draining: %d job(s) running, grace %.0f s",
            len(self.jobs),
            self.settings.shutdown_grace,
        )
        await self.link.send(
            WorkerStatusMessage(
                type="worker_status",
                worker_id=self.worker_id,
                status=WorkerStatus.DRAINING,
                available_slots=0,
            )
        )
        try:
            async with asyncio.timeout(self.settings.shutdown_grace):
                await self.idle.wait()
        except TimeoutError:
            cut = [j for j in self.jobs.values() if j.cancel_reason is None]
            log.warning("grace over: handing back %s", [j.job_id for j in cut])
            await asyncio.gather(*(self.cancel_job(j, "shutdown") for j in cut))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_TIMEOUT):
                    await self.idle.wait()
        if self.link.connected and not await self.link.wait_settled(5.0):
            log.warning("outcomes never acknowledged: %s", self.link.owed_jobs)
        # Graceful goodbye: the hub requeues anything still held by us at once.
        await self.link.send(
            Disconnect(type="disconnect", worker_id=self.worker_id, reason="worker shutting down")
        )

    # ------------------------------------------------------------------ connection
    def registration(self) -> RegisterWorker:
        """The `register_worker` message, naming jobs still held from before a reconnect."""
        return RegisterWorker(
            type="register_worker",
            worker_id=self.worker_id,
            capabilities=self.capabilities,
            status=self.status,
            auth_token=self.settings.worker_token,
            current_jobs=self.held_jobs(),
            models_loaded=self._sent_warmth(),
        )

    def _sent_warmth(self) -> dict[str, list[str]]:
        self._warm_sent = self.models_loaded()
        return self._warm_sent

    def welcomed(self, welcome: Welcome) -> None:
        """Take what the hub says about itself (its REST base for artifacts)."""
        if welcome.hub_http_url and not self.settings.hub_http_url:
            self.hub_http_url = welcome.hub_http_url
        if welcome.type == "worker_registered":
            self.claim_wait = min(self.settings.claim_wait, welcome.claim_wait_max or 0.0)

    def on_server_disconnect(self, reconnect_after: float | None) -> None:
        """The hub asked us to go away for `reconnect_after` seconds."""
        self.reconnect_after = reconnect_after

    # ------------------------------------------------------------------ jobs
    def connector_for(self, a: JobAssigned) -> Connector:
        """The connector serving the job's `service_type` (else its type, else the first)."""
        wanted = a.requirements.service_type or a.job_type
        for connector in self.connectors:
            if wanted in connector.services or wanted == connector.name:
                return connector
        return self.connectors[0]

    def start_job(self, a: JobAssigned) -> None:
        """Run an assigned job in the worker's task group."""
        if a.job_id in self.jobs:
            return  # the hub repeated an assignment we already run
        assert self._tg is not None
        assert self._http is not None
        artifacts = HubArtifacts(
            self._http,
            self.hub_http_url or derive_http_url(self.settings.hub_url),
            a.job_id,
            a.claim_token,
            worker_token=self.settings.worker_token,
        )
        context = JobContext(
            id=a.job_id,
            type=a.job_type,
            payload=a.payload,
            requirements=a.requirements,
            priority=a.priority,
            customer_id=a.customer_id,
            workflow_id=a.workflow_id,
            step_number=a.step_number,
            artifacts=artifacts,
        )
        job = ActiveJob(a, context, self.connector_for(a))
        self.jobs[a.job_id] = job
        self.idle.clear()
        self.metrics.set_running(len(self.jobs))
        job.task = self._tg.create_task(self._run_job(job), name=f"job-{a.job_id}")

    async def _run_job(self, job: ActiveJob) -> None:
        a = job.assignment
        attrs = {
            "empq.job.id": a.job_id,
            "empq.job.type": a.job_type,
            "empq.worker.id": self.worker_id,
        }
        try:
            with telemetry.span("empq.run", parent=a.traceparent, attributes=attrs):
                await self.executor.run(job)
        finally:
            self.jobs.pop(job.job_id, None)
            self.metrics.set_running(len(self.jobs))
            if not self.jobs:
                self.idle.set()
            self.claim_wanted.set()

    def order_cancel(self, job_id: str) -> None:
        """The hub cancelled `job_id`: stop it (in the background, not in the reader)."""
        job = self.jobs.get(job_id)
        if job is not None and job.cancel_reason is None and self._tg is not None:
            # Marked now, not when the task runs: a second order in the same turn (the
            # hub's `cancel_job` and the refusal of a report about the cancelled job)
            # must not cancel at the service twice: a second `/interrupt` could stop
            # the service's next job.
            job.cancel_reason = "cancelled"
            self._tg.create_task(self.cancel_job(job, "cancelled"))

    async def cancel_job(self, job: ActiveJob, reason: str) -> None:
        """Tell the connector to stop the service's work, then cancel the job's task."""
        job.cancel_reason = "cancelled" if reason == "cancelled" else "shutdown"
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await job.connector.cancel(job.context)
        except TimeoutError:
            log.warning(
                "connector %s did not cancel job %s in time", job.connector.name, job.job_id
            )
        except Exception:  # the task is cancelled below whatever the connector did
            log.exception("connector %s failed to cancel job %s", job.connector.name, job.job_id)
        if job.task is not None:
            job.task.cancel()

    async def progress_flusher(self) -> None:
        """Every PROGRESS_INTERVAL: accept jobs still running, send unsent progress,
        and send again the owed outcomes whose back-off has passed."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            for job in list(self.jobs.values()):
                await self.executor.flush_progress(job)
            await self.link.resend_due()

    def claim_job_message(self, slots: int = 1) -> ClaimJob:
        """One `claim_job` for up to `slots` jobs, waiting on the hub for up to `claim_wait`."""
        return ClaimJob(
            type="claim_job",
            worker_id=self.worker_id,
            max_jobs=max(1, slots),
            wait_seconds=self.claim_wait,
        )

    def next_claim(self, ending: str) -> ClaimNext | None:
        """The `claim_next` to send with the outcome of job `ending`, if it frees a slot
        the worker wants filled (none while draining or between connections)."""
        session = self.session
        if session is None or self.draining or self.stop.is_set():
            return None
        free = self.slots - len(self.jobs) + (1 if ending in self.jobs else 0)
        if free <= 0:
            return None
        if session.claims:
            # A claim is in flight already: the slots freed meanwhile (a burst of jobs
            # ending together) go into one claim once it is answered, not one each.
            session.rewake = True
            return None
        return session.claim_carried(free)


async def run_worker(
    settings: WorkerSettings,
    *,
    capabilities: WorkerCapabilities | None = None,
    connectors: list[Connector] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a worker until `stop` is set (or SIGTERM/SIGINT when `stop` is None)."""
    caps = capabilities or load_capabilities(settings)
    await Worker(settings, capabilities=caps, connectors=connectors, stop=stop).run()
