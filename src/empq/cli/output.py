"""How the `empq` command shows things: JSON for scripts, rich tables and panels for people."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from empq.models import Job, WorkerInfo
from empq.sdk import Explanation, Match

# A pipe has no width; 80 columns would cut job ids in tables, so use a roomy default
# there unless COLUMNS says otherwise.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(highlight=False, width=_PIPE_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

STATUS_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "assigned": "blue",
    "accepted": "blue",
    "in_progress": "yellow",
    "completed": "green",
    "failed": "red",
    "timeout": "red",
    "cancelled": "magenta",
    "idle": "green",
    "busy": "yellow",
    "draining": "blue",
    "offline": "dim",
}


def styled(status: str) -> str:
    """A status word in its colour (rich markup)."""
    style = STATUS_STYLE.get(status, "white")
    return f"[{style}]{escape(status)}[/{style}]"


def error_line(message: str) -> None:
    """`empq: <message>` as one unwrapped line on stderr."""
    sys.stderr.write(f"empq: {' '.join(message.split())}\n")
    sys.stderr.flush()


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout (never wrapped or coloured)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    """Print one compact JSON object per line (a stream of snapshots)."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def job_json(job: Job) -> dict[str, Any]:
    """A job as JSON: the hub's record, with `job_id` beside `id` for scripts that expect it."""
    data = job.model_dump(mode="json")
    data["job_id"] = job.id
    return data


def age(when: datetime | None) -> str:
    """How long ago, compactly (`12s`, `5m`, `1.5h`, `2.0d`), or `-`."""
    if when is None:
        return "-"
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def output_files(job: Job) -> list[str]:
    """The artifact URLs in a job's result."""
    files = (job.result or {}).get("output_files") or []
    return [str(f) for f in files] if isinstance(files, list) else []


def show_job(job: Job) -> None:
    """A job's fields, one per line, for `empq status`."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("job", escape(job.id)),
        ("type", escape(job.type)),
        ("status", styled(job.status.value)),
        ("progress", f"{job.progress:.0f}%"),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} (max retries {job.max_retries})"),
    ]
    optional = {
        "position": job.position,
        "eta": eta_text(job) if job.status == "queued" else None,
        "worker": job.worker_id,
        "customer": job.customer_id,
        "workflow": job.workflow_id,
        "service": job.requirements.service_type,
        # the last progress message is stale once the job has completed
        "message": None if job.status == "completed" else job.message,
        "error": job.error,
    }
    rows += [(k, escape(str(v))) for k, v in optional.items() if v is not None]
    times = {
        "created": job.created_at,
        "assigned": job.assigned_at,
        "started": job.started_at,
        "completed": job.completed_at,
    }
    rows += [(k, f"{v.isoformat()} ({age(v)} ago)") for k, v in times.items() if v is not None]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    show_result(job)


def show_result(job: Job) -> None:
    """The result and artifact URLs of a finished job."""
    if job.result is not None:
        shown = {k: v for k, v in job.result.items() if k != "output_files"}
        if shown:
            console.print("[bold]result[/bold]  " + escape(json.dumps(shown, default=str)))
    for url in output_files(job):
        console.print(f"[bold]artifact[/bold] {escape(url)}")


def jobs_table(jobs: Iterable[Job]) -> Table:
    """`empq jobs`."""
    jobs = list(jobs)
    columns = ["ID", "TYPE", "STATUS", "PRI", "PROG", "WORKER", "AGE"]
    customers = any(job.customer_id for job in jobs)
    if customers:
        columns.insert(6, "CUSTOMER")
    table = Table(box=None, header_style="bold")
    for name in columns:
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for job in jobs:
        row = [
            escape(job.id),
            escape(job.type),
            styled(job.status.value),
            str(job.priority),
            f"{job.progress:.0f}%",
            escape(job.worker_id or "-"),
            age(job.created_at),
        ]
        if customers:
            row.insert(6, escape(job.customer_id or "-"))
        table.add_row(*row)
    return table


def workers_table(workers: Iterable[WorkerInfo]) -> Table:
    """`empq workers`."""
    table = Table(box=None, header_style="bold")
    for name in ("WORKER", "STATUS", "SERVICES", "SLOTS", "JOBS", "DONE", "FAILED", "SEEN"):
        table.add_column(name, no_wrap=name != "JOBS", overflow="ellipsis")
    for worker in workers:
        caps = worker.capabilities
        status = worker.status.value if worker.connected else "offline"
        down = services_down(worker.connector_status)
        table.add_row(
            escape(worker.worker_id),
            styled(status) + (f" [red]{escape(down)}[/red]" if down else ""),
            escape(", ".join(caps.services) or "-"),
            str(caps.performance.concurrent_jobs),
            escape(", ".join(worker.current_jobs) or "-"),
            str(worker.jobs_completed),
            str(worker.jobs_failed),
            age(worker.last_heartbeat),
        )
    return table


def services_down(connector_status: Any) -> str:
    """`comfyui: unreachable since 14:05:01Z` for each connector a worker reports down."""
    if not isinstance(connector_status, Mapping):
        return ""
    parts = []
    for name, entry in connector_status.items():
        if isinstance(entry, Mapping) and entry.get("state") == "unreachable":
            since = str(entry.get("since") or "")
            clock = since[11:19] + "Z" if len(since) >= 19 else since
            parts.append(f"{name}: unreachable since {clock}" if clock else f"{name}: unreachable")
    return "; ".join(parts)


def show_explanation(explanation: Explanation) -> None:
    """`empq explain JOB`."""
    head = f"job {escape(explanation.job_id)} is {styled(explanation.status.value)}"
    if explanation.position is not None:
        head += f", position {explanation.position} in the queue"
    console.print(head)
    if explanation.summary:
        console.print(escape(explanation.summary))
    if explanation.matching_workers:
        names = [_worker_name(w) for w in explanation.matching_workers]
        console.print("[green]can run it:[/green] " + escape(", ".join(names)))
    elif not explanation.summary:
        console.print("[yellow]no worker can run it right now[/yellow]")
    if explanation.rejected_workers:
        table = Table(box=None, header_style="bold")
        table.add_column("REJECTED WORKER", no_wrap=True)
        table.add_column("WHY")
        for rejected in explanation.rejected_workers:
            table.add_row(escape(rejected.worker_id), escape("; ".join(rejected.reasons)))
        console.print(table)


def show_match(found: Match) -> None:
    """`empq explain --dry-run`."""
    console.print(f"would queue at position {found.position}, {eta_text(found)}")
    for warning in found.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(str(warning))}")
    if found.matching_workers:
        names = [
            _worker_name(w) + (" (warm)" if isinstance(w, Mapping) and w.get("warm") else "")
            for w in found.matching_workers
        ]
        console.print("[green]can run it:[/green] " + escape(", ".join(names)))
    if found.rejected_workers:
        table = Table(box=None, header_style="bold")
        table.add_column("REJECTED WORKER", no_wrap=True)
        table.add_column("WHY")
        for rejected in found.rejected_workers:
            table.add_row(escape(rejected.worker_id), escape("; ".join(rejected.reasons)))
        console.print(table)


def eta_text(item: Job | Match) -> str:
    """`ETA 12s`, or why there is none."""
    if item.eta_seconds is not None:
        return f"ETA {item.eta_seconds:.0f}s" if item.eta_seconds >= 1 else "ETA now"
    return f"no ETA ({item.eta_reason or 'unknown'})"


def _worker_name(worker: Any) -> str:
    if isinstance(worker, Mapping):
        return str(worker.get("worker_id", worker))
    return str(worker)


def show_stats(stats: Mapping[str, Any]) -> None:
    """`empq stats`: each section of the hub's stats as `key: value` lines."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in stats.items():
        if isinstance(value, Mapping):
            table.add_row(escape(str(key)), "")
            for sub, subvalue in value.items():
                table.add_row(f"  {escape(str(sub))}", escape(_scalar(subvalue)))
        else:
            table.add_row(escape(str(key)), escape(_scalar(value)))
    console.print(table)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    return str(value)


def show_usage(usage: Mapping[str, Any]) -> None:
    """`empq usage`: one row per customer."""
    customers = usage.get("customers") or []
    if not customers:
        console.print(f"no usage from {usage.get('from')} to {usage.get('to')}")
        return
    table = Table(title=f"usage {usage.get('from')} .. {usage.get('to')}")
    for name in ("customer", "jobs", "gpu s", "wait s", "run s"):
        table.add_column(name, justify="left" if name in ("customer", "jobs") else "right")
    for c in customers:
        jobs = ", ".join(f"{k} {v}" for k, v in (c.get("jobs") or {}).items())
        table.add_row(
            escape(str(c.get("customer_id") or "-")),
            escape(jobs),
            f"{c.get('gpu_seconds', 0):.1f}",
            f"{c.get('wait_seconds', 0):.1f}",
            f"{c.get('run_seconds', 0):.1f}",
        )
    console.print(table)
