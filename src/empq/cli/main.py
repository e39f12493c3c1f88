"""The `empq` command: processes (`hub`, `worker`, `dev`) and client commands.

Every failure ends as one line on stderr and a non-zero exit code: 2 for a
command line that does not parse, 1 for everything else (bad values, unknown job,
hub unreachable, a watched job that did not complete).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from typer import TyperException as UsageProblem  # typer vendors click's usage errors

from empq import __version__
from empq.cli import client_commands, control_commands, output, server_commands
from empq.errors import EmpqError

app = typer.Typer(
    name="empq",
    help="empq: a distributed job queue for AI workloads (hub + GPU workers on one Redis).",
    invoke_without_command=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"empq {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    # `empq` alone shows the help and succeeds (typer's no_args_is_help exits 2)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


server_commands.register(app)
client_commands.register(app)
control_commands.register(app)


def _fail(message: str, code: int) -> int:
    output.error_line(message)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises for expected errors)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="empq", standalone_mode=False)
    except UsageProblem as exc:  # usage errors, bad parameters
        ctx = getattr(exc, "ctx", None)
        name = getattr(ctx, "command_path", "empq")
        hint = f" (see '{name} --help')" if ctx is not None else ""
        return _fail(exc.format_message() + hint, exc.exit_code)
    except typer.Abort:
        return _fail("aborted", 130)
    except EmpqError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point (`empq`)."""
    sys.exit(run())


if __name__ == "__main__":
    main()
