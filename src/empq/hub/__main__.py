"""`python -m empq.hub`: run a hub from `EMPQ_*` settings (used by restart tests)."""

from __future__ import annotations

from empq import runner
from empq.config import HubSettings
from empq.hub.server import serve
from empq.logging import configure


def main() -> None:
    """Run the hub until SIGINT or SIGTERM."""
    settings = HubSettings()
    configure(settings)
    runner.run(serve(settings))


if __name__ == "__main__":
    main()
