"""`python -m empq.hub`: run a hub from `EMPQ_*` settings (used by restart tests)."""

from __future__ import annotations

import sys

from empq import runner, telemetry
from empq.cli.server_commands import build_settings
from empq.config import HubSettings
from empq.errors import EmpqError
from empq.hub.server import serve
from empq.logging import configure


def main() -> None:
    """Run the hub until SIGINT or SIGTERM; a bad setting is one line on stderr."""
    try:
        settings = build_settings(HubSettings, {})
    except EmpqError as exc:
        sys.exit(f"empq: {exc}")
    configure(settings)
    try:
        with telemetry.configured("empq-hub"):
            runner.run(serve(settings))
    except EmpqError as exc:
        sys.exit(f"empq: {exc}")


if __name__ == "__main__":
    main()
