"""`python -m empq.worker`: one worker configured from `EMPQ_*` environment variables.

Exits 0 after a graceful stop (SIGTERM/SIGINT), 2 on bad settings, 1 if the hub
refuses the worker.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError as PydanticValidationError

from empq import runner, telemetry
from empq.config import WorkerSettings
from empq.errors import AuthError, EmpqError
from empq.logging import configure
from empq.worker.runtime import run_worker


def main() -> int:
    """Run a worker from the environment; returns the exit code."""
    try:
        settings = WorkerSettings()
    except PydanticValidationError as exc:
        print(f"empq worker: bad settings: {exc}", file=sys.stderr)
        return 2
    configure(settings)
    try:
        with telemetry.configured("empq-worker"):
            runner.run(run_worker(settings))
    except AuthError as exc:
        print(f"empq worker: refused by the hub: {exc.message}", file=sys.stderr)
        return 1
    except EmpqError as exc:
        print(f"empq worker: {exc.message}", file=sys.stderr)
        return 2 if "capabilities" in exc.message or "connector" in exc.message else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
