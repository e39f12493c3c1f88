"""`empq submit | status | watch | cancel | retry | jobs | workers | stats | explain`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from empq.cli import output
from empq.errors import ValidationError
from empq.models import Job
from empq.sdk import Client, WaitTimeout
from empq.status import JobStatus

HubOption = Annotated[
    str,
    typer.Option(
        "--hub",
        envvar="EMPQ_HUB",
        help="The hub's REST URL.",
        show_default=True,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="EMPQ_API_KEY", help="API key, when the hub wants one."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
JobArgument = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="The job's id.", show_default=False)
]

DEFAULT_HUB = "http://127.0.0.1:3001"

#: CLI calls fail fast when the hub is down: two quick retries, not the SDK's four.
CLI_RETRIES = 2


@contextmanager
def connect(hub: str, api_key: str | None) -> Iterator[Client]:
    """A `Client` for one command, closed when it ends."""
    client = Client(hub, api_key, retries=CLI_RETRIES)
    try:
        yield client
    finally:
        client.close()


def parse_json_object(option: str, text: str | None) -> dict[str, Any] | None:
    """`--payload '{"a": 1}'` (or `@file.json`) as a dict; `ValidationError` naming the option."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise ValidationError(
                f"{option}: cannot read {text[1:]!r}: {exc.strerror}",
                [{"field": option, "message": f"cannot read file: {exc.strerror}"}],
            ) from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(
            f"{option} is not valid JSON: {exc}", [{"field": option, "message": str(exc)}]
        ) from exc
    if not isinstance(value, dict):
        raise ValidationError(
            f"{option} must be a JSON object, got {type(value).__name__}",
            [{"field": option, "message": "must be a JSON object"}],
        )
    return value


def submit(
    *,
    job_type: Annotated[str, typer.Option("--type", "-t", help="Job type, e.g. text_to_image.")],
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="requirements.service_type.")
    ] = None,
    priority: Annotated[int | None, typer.Option("--priority", "-p", help="0..100.")] = None,
    payload: Annotated[
        str | None, typer.Option(help="JSON object for the connector, or @file.json.")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="customer_id.")] = None,
    requirements: Annotated[
        str | None, typer.Option(help="JSON object of requirements, or @file.json.")
    ] = None,
    workflow_id: Annotated[str | None, typer.Option(help="Workflow this step belongs to.")] = None,
    workflow_priority: Annotated[int | None, typer.Option(help="The workflow's priority.")] = None,
    step: Annotated[int | None, typer.Option(help="step_number within the workflow.")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries after the first try.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="A resubmit with the same key returns the first job.")
    ] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Per-job HTTP callback.")] = None,
    watch_it: Annotated[
        bool, typer.Option("--watch", help="Follow the job until it ends (like `empq watch`).")
    ] = False,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job and print its id and place in the queue."""
    reqs = parse_json_object("--requirements", requirements) or {}
    if service is not None:
        reqs["service_type"] = service
    fields: dict[str, Any] = {
        "customer_id": customer,
        "workflow_id": workflow_id,
        "workflow_priority": workflow_priority,
        "step_number": step,
        "max_retries": max_retries,
        "idempotency_key": idempotency_key,
        "webhook_url": webhook_url,
    }
    with connect(hub, api_key) as client:
        job = client.submit(
            job_type,
            payload=parse_json_object("--payload", payload),
            priority=priority,
            requirements=reqs,
            **{k: v for k, v in fields.items() if v is not None},
        )
        if as_json and not watch_it:
            output.emit_json(output.job_json(job))
        elif not as_json:
            where = f" at position {job.position}" if job.position is not None else ""
            output.console.print(
                f"job [bold]{escape(job.id)}[/bold] {output.styled(job.status)}{where}"
            )
            for warning in job.warnings:
                output.err_console.print(f"[yellow]warning:[/yellow] {escape(str(warning))}")
        if watch_it:
            raise typer.Exit(_follow(client, job.id, as_json=as_json, timeout=None))


def status(
    job_id: JobArgument,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job: status, progress, worker, times, result."""
    with connect(hub, api_key) as client:
        job = client.get(job_id)
    if as_json:
        output.emit_json(output.job_json(job))
    else:
        output.show_job(job)


def watch(
    job_id: JobArgument,
    timeout: Annotated[
        float | None, typer.Option(help="Give up (exit 1) after this many seconds.")
    ] = None,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live until it ends; exit 0 if it completed, 1 otherwise.

    With --json, print one JSON snapshot per line as the job changes.
    """
    with connect(hub, api_key) as client:
        raise typer.Exit(_follow(client, job_id, as_json=as_json, timeout=timeout))


def _follow(client: Client, job_id: str, *, as_json: bool, timeout: float | None) -> int:
    """Watch a job to its end; return the exit code (0 completed, 1 anything else)."""
    try:
        if as_json:
            last = _follow_json(client, job_id, timeout)
        else:
            last = _follow_live(client, job_id, timeout)
    except WaitTimeout as exc:
        if not as_json:
            output.error_line(str(exc))
        else:
            output.emit_json_line({**output.job_json(exc.job), "timed_out": True})
        return 1
    if not as_json:
        _print_ending(last)
    return 0 if last.status == JobStatus.COMPLETED else 1


def _follow_json(client: Client, job_id: str, timeout: float | None) -> Job:
    last: Job | None = None
    for job in client.watch(job_id, timeout):
        output.emit_json_line(output.job_json(job))
        last = job
    assert last is not None
    return last


def _follow_live(client: Client, job_id: str, timeout: float | None) -> Job:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[worker]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    last: Job | None = None
    with Progress(*columns, console=output.console, transient=False) as progress:
        task = progress.add_task(f"{escape(job_id)} queued", total=100, worker="")
        for job in client.watch(job_id, timeout):
            last = job
            worker = f"on {escape(job.worker_id)}" if job.worker_id else ""
            message = f" {escape(job.message)}" if job.message and not job.is_final else ""
            if job.status == JobStatus.QUEUED and job.position is not None:
                message = f" position {job.position}, {output.eta_text(job)}"
            progress.update(
                task,
                completed=100 if job.status == JobStatus.COMPLETED else job.progress,
                description=f"{escape(job.id)} {output.styled(job.status.value)}{message}",
                worker=worker,
            )
    assert last is not None
    return last


def _print_ending(job: Job) -> None:
    if job.status == JobStatus.COMPLETED:
        output.console.print(f"job [bold]{escape(job.id)}[/bold] {output.styled('completed')}")
    else:
        reason = f": {escape(job.error)}" if job.error else ""
        output.console.print(
            f"job [bold]{escape(job.id)}[/bold] ended {output.styled(job.status.value)}{reason}"
        )
    output.show_result(job)


def cancel(
    job_id: JobArgument,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job; a running job's worker is told to stop."""
    with connect(hub, api_key) as client:
        job = client.cancel(job_id)
    if as_json:
        output.emit_json(output.job_json(job))
    else:
        output.console.print(f"job [bold]{escape(job.id)}[/bold] {output.styled(job.status.value)}")


def retry(
    job_id: JobArgument,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a failed, timed-out or cancelled job again with a fresh retry budget."""
    with connect(hub, api_key) as client:
        job = client.retry(job_id)
    if as_json:
        output.emit_json(output.job_json(job))
    else:
        where = f" at position {job.position}" if job.position is not None else ""
        output.console.print(
            f"job [bold]{escape(job.id)}[/bold] {output.styled(job.status.value)}{where}"
        )


def jobs(
    *,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="Only jobs with this status.")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer's jobs.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, with filters."""
    with connect(hub, api_key) as client:
        page = client.jobs(
            status=status_filter, customer_id=customer, type=job_type, limit=limit, cursor=cursor
        )
    if as_json:
        output.emit_json(
            {"jobs": [output.job_json(j) for j in page.jobs], "next_cursor": page.next_cursor}
        )
        return
    if not page.jobs:
        output.console.print("no jobs")
        return
    output.console.print(output.jobs_table(page.jobs))
    if page.next_cursor:
        output.console.print(f"[dim]more: --cursor {escape(page.next_cursor)}[/dim]")


def workers(
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List connected and recently seen workers."""
    with connect(hub, api_key) as client:
        found = client.workers()
    if as_json:
        output.emit_json({"workers": [w.model_dump(mode="json") for w in found]})
    elif not found:
        output.console.print("no workers")
    else:
        output.console.print(output.workers_table(found))


def stats(
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue depth, workers by status, throughput and timings."""
    with connect(hub, api_key) as client:
        found = client.stats()
    if as_json:
        output.emit_json(found)
    else:
        output.show_stats(found)


def explain(
    job_id: Annotated[
        str | None, typer.Argument(help="The job (omit with --dry-run).", show_default=False)
    ] = None,
    *,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Explain a submission instead (--type, --service, ...): nothing is stored.",
        ),
    ] = False,
    job_type: Annotated[
        str | None, typer.Option("--type", "-t", help="With --dry-run: the job type.")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="With --dry-run: service_type.")
    ] = None,
    priority: Annotated[int | None, typer.Option("--priority", "-p", help="0..100.")] = None,
    customer: Annotated[str | None, typer.Option(help="With --dry-run: customer_id.")] = None,
    requirements: Annotated[
        str | None, typer.Option(help="With --dry-run: JSON requirements, or @file.json.")
    ] = None,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Why a job is (not) running: which workers can take it, which cannot and why.

    With --dry-run, the same for a job not submitted: where it would queue, its ETA,
    which workers could run it (and where its models are warm).
    """
    if not dry_run:
        if job_id is None:
            raise typer.BadParameter("give a JOB_ID, or --dry-run with --type")
        with connect(hub, api_key) as client:
            explanation = client.explain(job_id)
        if as_json:
            output.emit_json(explanation.model_dump(mode="json"))
        else:
            output.show_explanation(explanation)
        return
    if job_type is None or job_id is not None:
        raise typer.BadParameter("--dry-run takes --type (and no JOB_ID)")
    reqs = parse_json_object("--requirements", requirements) or {}
    if service is not None:
        reqs["service_type"] = service
    fields: dict[str, Any] = {"requirements": reqs}
    if priority is not None:
        fields["priority"] = priority
    if customer is not None:
        fields["customer_id"] = customer
    with connect(hub, api_key) as client:
        found = client.match(job_type, **fields)
    if as_json:
        output.emit_json(found.model_dump(mode="json"))
    else:
        output.show_match(found)


def usage(
    *,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="Start, ISO 8601 (default: 24 hours ago)")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="End, ISO 8601 (default: now)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Jobs, GPU-seconds, queue wait and run time per customer."""
    with connect(hub, api_key) as client:
        found = client.usage(customer, since, until)
    if as_json:
        output.emit_json(found)
    else:
        output.show_usage(found)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `empq` app."""
    for command in (submit, status, watch, cancel, retry, jobs, workers, stats, explain, usage):
        app.command(rich_help_panel="Client")(command)
