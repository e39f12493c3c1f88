"""The Lua scripts of `empq/lua/`, each registered once and run by SHA.

redis-py's `Script` runs EVALSHA and, on NOSCRIPT (after a Redis restart or
SCRIPT FLUSH), loads the source again and retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

NAMES = (
    "submit",
    "peek",
    "claim",
    "accept",
    "progress",
    "complete",
    "fail",
    "requeue",
    "cancel",
    "retry",
    "promote",
    "cleanup",
    "gc_signature",
)


def source(name: str) -> str:
    """The text of `lua/<name>.lua`."""
    return (resources.files("empq.lua") / f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """One registered `AsyncScript` per operation."""

    submit: AsyncScript
    peek: AsyncScript
    claim: AsyncScript
    accept: AsyncScript
    progress: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    requeue: AsyncScript
    cancel: AsyncScript
    retry: AsyncScript
    promote: AsyncScript
    cleanup: AsyncScript
    gc_signature: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script with this client (no round trip until first use)."""
        return cls(**{name: redis.register_script(source(name)) for name in NAMES})
