"""Running the `empq` command as a user would: a real subprocess of the console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def empq_argv() -> list[str]:
    """The installed `empq` script next to this Python, else `python -m empq.cli.main`."""
    script = shutil.which("empq", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "empq.cli.main"]


@dataclass
class Result:
    """What a user sees: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def run_empq(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Result:
    """Run `empq ARGS...` to completion."""
    full_env = {k: v for k, v in os.environ.items() if k != "EMPQ_HUB"}
    full_env.update({"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    proc = subprocess.run(
        [*empq_argv(), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
