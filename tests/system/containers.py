"""podman, images and compose projects for the container tests.

The images are built as ../shared/containers/setup.sh says (its base image and build
flags: `--format docker` keeps HEALTHCHECK, the host's CA bundle and pip config are
mounted); `EMPQ_BASE_IMAGE` / `EMPQ_BUILD_FLAGS` from a shell that sourced it are used,
else the script is sourced here. Every podman and podman-compose call is bounded: a
compose `up` can wait forever on a service whose dependency died.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def setup_script() -> Path | None:
    """The machine's container setup script, if there is one."""
    for candidate in (
        os.environ.get("EMPQ_CONTAINERS_SETUP"),
        str(ROOT.parent / "shared" / "containers" / "setup.sh"),
        "/work/shared/containers/setup.sh",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class Podman:
    """What building and running here takes."""

    base_image: str
    build_flags: list[str]
    compose: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`podman ARGS`, output captured, bounded."""
        return subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def build(self, tag: str, context: Path, containerfile: Path, timeout: float = 900) -> None:
        """Build `tag` from `containerfile` on the base image; fail showing the log."""
        done = self.run(
            "build",
            *self.build_flags,
            "--build-arg",
            f"BASE_IMAGE={self.base_image}",
            "-t",
            tag,
            "-f",
            str(containerfile),
            str(context),
            timeout=timeout,
        )
        assert done.returncode == 0, f"podman build {tag} failed:\n{done.stdout}\n{done.stderr}"


def podman_here() -> Podman:
    """podman ready to build and run, or skip saying why it cannot run on this machine."""
    base = os.environ.get("EMPQ_BASE_IMAGE")
    flags = os.environ.get("EMPQ_BUILD_FLAGS")
    venv = os.environ.get("CONTAINERS_VENV", "/opt/containers-venv")
    if not (base and flags):
        script = setup_script()
        if script is None and shutil.which("podman") is None:
            pytest.skip("podman is not installed and no containers/setup.sh to install it")
        if script is not None:
            done = subprocess.run(
                ["bash", "-c", f"source {shlex.quote(str(script))} >&2 && env -0"],
                capture_output=True,
                timeout=1800,
                check=False,
            )
            if done.returncode != 0:
                pytest.skip(f"podman cannot run here: {script} failed: {done.stderr[-2000:]!r}")
            env = dict(
                item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item
            )
            base, flags = env.get("EMPQ_BASE_IMAGE"), env.get("EMPQ_BUILD_FLAGS")
            venv = env.get("CONTAINERS_VENV", venv)
        base = base or "python:3.12-slim"
        flags = flags or "--format docker"
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    info = subprocess.run(
        ["podman", "info"], capture_output=True, text=True, timeout=60, check=False
    )
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    compose = shutil.which("podman-compose") or f"{venv}/bin/podman-compose"
    if not Path(compose).exists():
        pytest.skip("podman-compose is not installed (containers/setup.sh installs it)")
    return Podman(base, shlex.split(flags), compose)


@dataclass
class ComposeProject:
    """One `podman-compose -p NAME` project of deploy/compose.yaml + compose.override.yaml."""

    podman: Podman
    name: str
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(DEPLOY / "compose.yaml"), "-f", str(DEPLOY / "compose.override.yaml")]
        return subprocess.run(
            [self.podman.compose, "-p", self.name, *files, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=DEPLOY,
            check=False,
        )

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.name}_{service}_{index}"

    def logs(self) -> str:
        """`podman ps -a` and every container's last log lines (for a failure's message)."""
        ps = self.podman.run(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={self.name}",
            "--format", "{{.Names}} {{.Status}}",
        )  # fmt: skip
        parts = [ps.stdout]
        for line in ps.stdout.splitlines():
            name = line.split(" ", 1)[0]
            log = self.podman.run("logs", "--tail", "30", name, timeout=30)
            parts.append(f"--- {name}\n{log.stdout}{log.stderr}")
        return "\n".join(parts)

    def up(self, *args: str) -> None:
        """Start the stack (bounded); fail with every container's log if it does not start."""
        try:
            done = self.compose("up", "-d", "--no-build", *args, timeout=180)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"compose up hung for 180 s:\n{self.logs()}") from None
        assert done.returncode == 0, f"compose up failed:\n{done.stderr}\n{self.logs()}"

    def down(self) -> None:
        """Remove every container, the pod, volumes and network of the project."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.compose("down", "-v", "-t", "5", timeout=120)
        # `down` leaves containers made by --scale behind; the pod holds them all
        self.podman.run("pod", "rm", "-f", f"pod_{self.name}", timeout=120)
        left = self.podman.run(
            "ps", "-aq", "--filter", f"label=io.podman.compose.project={self.name}"
        ).stdout.split()
        if left:
            self.podman.run("rm", "-f", "-t", "2", *left, timeout=120)
        volumes = self.podman.run(
            "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={self.name}"
        ).stdout.split()
        if volumes:
            self.podman.run("volume", "rm", "-f", *volumes)
        self.podman.run("network", "rm", "-f", f"{self.name}_default")
