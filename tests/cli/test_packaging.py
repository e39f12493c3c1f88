"""What a new user of the package sees first: `--version`, `--help`, the metadata."""

from __future__ import annotations

import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import pytest
import typer

from empq import __version__
from empq.cli import server_commands
from empq.cli.flags import setting_fields
from empq.cli.main import app
from empq.config import HubSettings, WorkerSettings
from tests.cli.support import run_empq
from tests.support.hub_fixtures import HubFactory

ROOT = Path(__file__).resolve().parents[2]


def _command(name: str) -> typer.main.TyperCommand:  # type: ignore[name-defined]
    group = typer.main.get_command(app)
    return group.commands[name]  # type: ignore[attr-defined,no-any-return]


def test_version_prints_the_installed_version() -> None:
    result = run_empq("--version")
    assert result.code == 0
    assert result.out.strip() == f"empq {version('emp-job-queue')}"
    assert __version__ == version("emp-job-queue")


async def test_health_reports_the_version(hub_factory: HubFactory) -> None:
    async with hub_factory() as hub, hub.client() as http:
        body = (await http.get("/health")).json()
    assert body["version"] == __version__


@pytest.mark.parametrize(
    ("command", "settings", "not_flags"),
    [("hub", HubSettings, set()), ("worker", WorkerSettings, set())],
)
def test_every_setting_the_command_uses_is_a_flag(
    command: str, settings: type, not_flags: set[str]
) -> None:
    missing = set(settings.model_fields) - setting_fields(_command(command)) - not_flags
    assert not missing, f"empq {command} has no flag for: {sorted(missing)}"


def test_dev_has_a_flag_for_every_setting_it_reads() -> None:
    # what the supervisor itself reads and hands to its children
    assert {
        "hub_host", "hub_port", "ws_port", "redis_url", "key_prefix", "data_dir",
        "artifact_dir", "api_keys", "log_level", "log_format",
    } <= setting_fields(_command("dev"))  # fmt: skip


@pytest.mark.parametrize(
    ("command", "flag", "env", "default"),
    [
        ("hub", "--hub-port", "EMPQ_HUB_PORT", "3001"),
        ("hub", "--public-url", "EMPQ_PUBLIC_URL", "unset"),
        ("hub", "--retry-delays", "EMPQ_RETRY_DELAYS", "5,15,30"),
        ("hub", "--heartbeat-timeout", "EMPQ_HEARTBEAT_TIMEOUT", "60"),
        ("worker", "--hub-url", "EMPQ_HUB_URL", "ws://127.0.0.1:3002"),
        ("worker", "--concurrent-jobs", "EMPQ_CONCURRENT_JOBS", "1"),
        ("dev", "--ws-port", "EMPQ_WS_PORT", "3002"),
    ],
)
def test_help_shows_each_flags_variable_and_default(
    command: str, flag: str, env: str, default: str
) -> None:
    out = run_empq(command, "--help", env={"COLUMNS": "300"}).out
    line = next(ln for ln in out.splitlines() if flag in ln)
    assert f"[env var: {env}]" in line
    assert f"[default: ({default})]" in line or f"[default: {default}]" in line


def test_a_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPQ_CLAIM_TIMEOUT", "7")
    settings = server_commands.build_settings(HubSettings, {"claim_timeout": 3.0})
    assert settings.claim_timeout == 3.0
    assert server_commands.build_settings(HubSettings, {}).claim_timeout == 7


def test_metadata_has_license_urls_and_classifiers() -> None:
    meta = metadata("emp-job-queue")
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert meta.get_all("Project-URL")
    classifiers = meta.get_all("Classifier") or []
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in classifiers)


def test_every_imported_distribution_is_declared() -> None:
    """Each third-party top-level import under src/ is a declared dependency."""
    import ast
    import sys

    declared = {
        d.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    extras = {
        d.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip().lower()
        for name, deps in optional.items()
        if name != "dev"
        for d in deps
    }
    # import name -> distribution name, where they differ
    dist_of = {"yaml": "pyyaml", "pynvml": "nvidia-ml-py", "opentelemetry": "opentelemetry-api"}
    found: set[str] = set()
    for path in (ROOT / "src" / "empq").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "empq" and top not in sys.stdlib_module_names:
                    found.add(dist_of.get(top, top).replace("_", "-").lower())
    missing = found - declared - extras
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
