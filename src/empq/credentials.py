"""Credentials: worker tokens (`EMPQ_WORKER_TOKENS`) and API keys (`EMPQ_API_KEYS`).

Worker token entries: a secret, optionally bound to worker ids.

An entry is `TOKEN` (any worker id) or `TOKEN:worker=ID` (that id only) or
`TOKEN:worker=PREFIX*` (ids starting with PREFIX). A worker presents only the
`TOKEN` part (`EMPQ_WORKER_TOKEN`). Plain data, no I/O: the settings check the
entries' shape at start-up and the hub matches presented tokens against them.

API key entries: see `parse_api_key` and docs/security.md ("Scoped API keys").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


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


# --------------------------------------------------------------------------- API keys

#: The prefix of a stored key digest: `sha256:<64 hex digits>` in place of the key.
DIGEST_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One `EMPQ_API_KEYS` entry: an operator key, or a key bound to one customer.

    `secret` is the key itself or, stored hashed, `sha256:<hex digest of the key>`.
    """

    secret: str
    #: None: an operator key (every job, every route); else the only customer it serves.
    customer_id: str | None = None
    #: The highest priority (and workflow_priority) the key may submit at.
    max_priority: int | None = None

    @property
    def is_operator(self) -> bool:
        """Whether the key opens everything (no customer binding)."""
        return self.customer_id is None

    def presented_by(self, candidate: bytes, digest: bytes) -> bool:
        """Whether `candidate` (and its SHA-256 hex `digest`) is this key, in constant time."""
        if self.secret.startswith(DIGEST_PREFIX):
            return hmac.compare_digest(digest, self.secret[len(DIGEST_PREFIX) :].encode())
        return hmac.compare_digest(candidate, self.secret.encode())


#: What a request holds when no API keys are configured: everything is open.
OPEN_ACCESS = ApiKey("")


def parse_api_key(entry: str) -> ApiKey:
    """`KEY`, `KEY:customer=ID[:max_priority=N]`, or the same with `sha256:HEX` as KEY.

    ValueError says what is wrong, never quoting the key.
    """
    parts = entry.split(":")
    if parts[0] == "sha256" and len(parts) > 1:
        parts = [f"{parts[0]}:{parts[1]}", *parts[2:]]
        if len(parts[0]) != len(DIGEST_PREFIX) + 64 or not all(
            c in "0123456789abcdef" for c in parts[0][len(DIGEST_PREFIX) :]
        ):
            raise ValueError("a hashed API key must be sha256: and 64 lowercase hex digits")
    secret, options = parts[0], parts[1:]
    if not secret:
        raise ValueError("an API key entry has an empty key")
    fields: dict[str, str] = {}
    for option in options:
        name, eq, value = option.partition("=")
        if name not in ("customer", "max_priority") or not eq or not value or name in fields:
            raise ValueError("an API key entry must be KEY or KEY:customer=ID[:max_priority=N]")
        fields[name] = value
    if "max_priority" in fields and "customer" not in fields:
        raise ValueError("max_priority= needs customer= (an operator key has no ceiling)")
    ceiling = fields.get("max_priority")
    if ceiling is not None and not (ceiling.isdigit() and 0 <= int(ceiling) <= 100):
        raise ValueError("an API key's max_priority must be a whole number 0..100")
    return ApiKey(secret, fields.get("customer"), int(ceiling) if ceiling is not None else None)


def parse_api_keys(entries: Iterable[str]) -> list[ApiKey]:
    """Every entry parsed (see `parse_api_key`)."""
    return [parse_api_key(e) for e in entries]


def find_api_key(candidate: str | None, keys: Iterable[ApiKey]) -> ApiKey | None:
    """The entry `candidate` presents, if any (every entry compared, in constant time)."""
    if candidate is None:
        return None
    got = candidate.encode()
    digest = hashlib.sha256(got).hexdigest().encode()
    found = None
    for key in keys:
        if key.presented_by(got, digest) and found is None:
            found = key
    return found


def read_key_file(path: Path) -> list[str]:
    """The entries of an API key file: one per line; blank lines and `#` comments skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
