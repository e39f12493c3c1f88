"""The bench scripts' own hooks still fit the code they measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dispatch_trace_hooks_find_every_function_they_wrap(tmp_path: Path) -> None:
    """bench/trace.py wraps hub and broker functions by name; a rename or a move must
    fail here, not leave the tool without marks."""
    out = tmp_path / "marks.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "bench" / "tracing"), EMPQ_TRACE_OUT=str(out))
    done = subprocess.run(
        [sys.executable, "-c", "import sitecustomize; sitecustomize.install()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == []
