"""`empq pause | resume | drain`: queue control (CONTRACT §10; operator key)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from empq.cli import output
from empq.cli.client_commands import DEFAULT_HUB, ApiKeyOption, HubOption, JsonOption, connect

ServiceArgument = Annotated[
    str, typer.Argument(metavar="SERVICE", help="The service type.", show_default=False)
]


def _show_service(reply: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(reply)
        return
    state = "paused" if reply["paused"] else "resumed"
    output.console.print(f"service [bold]{escape(str(reply['service_type']))}[/bold] {state}")


def pause(
    service: ServiceArgument,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a service type: its jobs stay queued and no worker claims them."""
    with connect(hub, api_key) as client:
        _show_service(client.pause(service), as_json)


def resume(
    service: ServiceArgument,
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused service type: workers claim its jobs again."""
    with connect(hub, api_key) as client:
        _show_service(client.resume(service), as_json)


def drain(
    worker_id: Annotated[
        str, typer.Argument(metavar="WORKER_ID", help="The worker's id.", show_default=False)
    ],
    hub: HubOption = DEFAULT_HUB,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drain a worker: it finishes its running jobs and takes no more."""
    with connect(hub, api_key) as client:
        info = client.drain(worker_id)
    if as_json:
        output.emit_json(info.model_dump(mode="json"))
    else:
        output.console.print(
            f"worker [bold]{escape(info.worker_id)}[/bold] {output.styled(info.status.value)}"
        )


def register(app: typer.Typer) -> None:
    """Add the queue control commands to the `empq` app."""
    for command in (pause, resume, drain):
        app.command(rich_help_panel="Queue control")(command)
