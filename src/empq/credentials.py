"""Worker token entries (`EMPQ_WORKER_TOKENS`): a secret, optionally bound to worker ids.

An entry is `TOKEN` (any worker id) or `TOKEN:worker=ID` (that id only) or
`TOKEN:worker=PREFIX*` (ids starting with PREFIX). A worker presents only the
`TOKEN` part (`EMPQ_WORKER_TOKEN`). Plain data, no I/O: the settings check the
entries' shape at start-up and the hub matches presented tokens against them.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerToken:
    """One `EMPQ_WORKER_TOKENS` entry."""

    secret: str
    #: None: any worker id; `gpu-*`: ids starting with `gpu-`; else exactly this id.
    worker: str | None = None

    def allows(self, worker_id: str) -> bool:
        """Whether a worker presenting this token may register as `worker_id`."""
        if self.worker is None:
            return True
        if self.worker.endswith("*"):
            return worker_id.startswith(self.worker[:-1])
        return worker_id == self.worker


def parse_worker_token(entry: str) -> WorkerToken:
    """An entry as `WorkerToken`, or ValueError saying what is wrong (never quoting it)."""
    secret, sep, binding = entry.partition(":")
    if not secret:
        raise ValueError("a worker token entry has an empty token")
    if not sep:
        return WorkerToken(secret)
    key, eq, pattern = binding.partition("=")
    if key != "worker" or not eq or not pattern:
        raise ValueError("a worker token entry must be TOKEN or TOKEN:worker=ID (or ID-PREFIX*)")
    if "*" in pattern[:-1]:
        raise ValueError("a worker token's worker= binding may end with '*', nowhere else")
    return WorkerToken(secret, pattern)


def parse_worker_tokens(entries: Iterable[str]) -> list[WorkerToken]:
    """Every entry parsed (see `parse_worker_token`)."""
    return [parse_worker_token(e) for e in entries]


def matching(candidate: str | None, tokens: Iterable[WorkerToken]) -> list[WorkerToken]:
    """The entries whose secret equals `candidate` (each compared in constant time)."""
    if candidate is None:
        return []
    got = candidate.encode()
    return [t for t in tokens if hmac.compare_digest(got, t.secret.encode())]
