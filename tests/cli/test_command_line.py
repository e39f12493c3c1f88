"""The `empq` command's help, usage errors and failure messages (no hub needed).

A few cases run the installed script in a subprocess, exactly as a user would; the
many variations run the same entry point in-process (`empq.cli.main.run`) to keep
the suite fast.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from empq.cli.main import run
from empq.redis_server import free_port
from tests.cli.support import Result, run_empq

Empq = Callable[..., Result]


@pytest.fixture
def empq(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Empq:
    """`empq ARGS...` in this process: (exit code, stdout, stderr)."""
    monkeypatch.delenv("EMPQ_HUB", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def call(*args: str) -> Result:
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


COMMANDS = [
    "hub", "worker", "dev", "submit", "status", "watch", "cancel", "retry",
    "jobs", "workers", "stats", "explain",
]  # fmt: skip


def test_help_lists_every_command() -> None:
    result = run_empq("--help")
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.out


def test_bare_empq_shows_help_and_succeeds(empq: Empq) -> None:
    result = empq()
    assert result.code == 0
    assert "submit" in result.out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(empq: Empq, command: str) -> None:
    result = empq(command, "--help")
    assert result.code == 0, result.err
    assert "Usage" in result.out


@pytest.mark.parametrize("command", ["submit", "status", "watch", "cancel", "retry", "jobs",
                                     "workers", "stats", "explain"])  # fmt: skip
def test_every_client_command_offers_json(empq: Empq, command: str) -> None:
    assert "--json" in empq(command, "--help").out


def test_shell_completion_is_available() -> None:
    result = run_empq("--show-completion", env={"SHELL": "/bin/bash"})
    assert result.code == 0
    assert "_EMPQ_COMPLETE" in result.out


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["submit"], "--type"),
        (["submit", "--type", "t", "--priority", "high"], "--priority"),
        (["watch"], "JOB_ID"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(empq: Empq, args: list[str], mentions: str) -> None:
    result = empq(*args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("empq: ")
    assert mentions in lines[0]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["submit", "--type", "t", "--payload", "{not json"], "--payload"),
        (["submit", "--type", "t", "--payload", "[1, 2]"], "--payload"),
        (["submit", "--type", "t", "--payload", "@/nonexistent/payload.json"], "--payload"),
        (["submit", "--type", "t", "--priority", "300"], "priority"),
        (["submit", "--type", "t", "--requirements", '{"gpu": 1}'], "requirements.gpu"),
        (["jobs", "--status", "sleeping"], "status"),
    ],
)
def test_bad_values_are_rejected_before_contacting_the_hub(
    empq: Empq, args: list[str], mentions: str
) -> None:
    # the hub URL points nowhere: the error must be about the input, not the hub
    result = empq(*args, "--hub", f"http://127.0.0.1:{free_port()}")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert mentions in lines[0]
    assert "unreachable" not in lines[0]


def test_unreachable_hub_is_one_line_and_non_zero() -> None:
    result = run_empq("submit", "--type", "t", "--hub", f"http://127.0.0.1:{free_port()}")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "unreachable" in lines[0]


def test_hub_defaults_to_the_empq_hub_variable(empq: Empq, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("EMPQ_HUB", f"http://127.0.0.1:{port}")
    result = empq("stats")
    assert result.code == 1
    assert f"127.0.0.1:{port}" in result.err


def test_bad_setting_names_flag_and_variable(empq: Empq) -> None:
    result = empq("hub", "--hub-port", "70000")
    assert result.code == 1
    assert "--hub-port" in result.err
    assert "EMPQ_HUB_PORT" in result.err


@pytest.mark.parametrize("command", ["hub", "dev"])
def test_a_taken_port_is_one_line_naming_the_setting(
    empq: Empq, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("EMPQ_HUB_PORT", str(port))
        result = empq(command)
    assert result.code == 1
    assert result.err.strip() == (
        f"empq: cannot listen on 127.0.0.1:{port} (--hub-port / EMPQ_HUB_PORT): "
        "Address already in use"
    )
