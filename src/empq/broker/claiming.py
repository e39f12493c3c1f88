"""Claiming: the best job a worker may run, handed out with a compare-and-set."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from empq.broker.base import (
    _CANDIDATE_CACHE,
    _CLAIM_ROUNDS,
    _CONTENDED_PEEK_DEPTH,
    _HINTS,
    _PEEK_DEPTH,
    _VERDICT_CACHE,
    Assignment,
)
from empq.broker.control import ControlMixin
from empq.codec import decode_hash
from empq.matching import (
    StaticVerdicts,
    WorkerState,
    dynamic_reasons,
    vram_limited,
    warm_first,
)
from empq.models import Isolation, WorkerCapabilities


@dataclass(slots=True)
class _Candidates:
    """The best queued members a peek saw, valid while `enqueued` is unchanged."""

    enqueued: bytes
    members: list[tuple[str, str]]  # (order key, signature), best first
    #: The peek found these queues empty.
    empty: bool = False


def _token(worker_id: str) -> str:
    # "<random>.<worker id>": the holder's key is known from the token alone.
    return f"{secrets.token_hex(12)}.{worker_id}"


class ClaimMixin(ControlMixin):
    """Claim jobs for workers."""

    def _static_eligible(self, caps: WorkerCapabilities) -> list[str]:
        entry = self._verdicts.get(id(caps))
        if entry is None or entry[0] is not caps:
            entry = (caps, StaticVerdicts(caps), b"", [])
        caps_, verdicts, version, eligible = entry
        if version != self._sig_version:
            eligible = [s for s, spec in self._specs.items() if not verdicts.reasons(spec)]
            entry = (caps_, verdicts, self._sig_version, eligible)
        self._verdicts[id(caps)] = entry
        self._verdicts.move_to_end(id(caps))
        while len(self._verdicts) > _VERDICT_CACHE:
            self._verdicts.popitem(last=False)
        return eligible

    def _eligible(self, caps: WorkerCapabilities, state: WorkerState) -> list[str]:
        eligible = self._static_eligible(caps)
        if self._paused:
            eligible = [s for s in eligible if self._specs[s].service_type not in self._paused]
        restricted = (
            state.running or state.draining or caps.customer_access.max_concurrent_customers
        )  # (VRAM too: with nothing running, every job that passed the static rules fits)
        if not restricted:
            return eligible
        return [s for s in eligible if not dynamic_reasons(caps, state, self._specs[s])]

    async def claim(
        self,
        worker_id: str,
        caps: WorkerCapabilities,
        state: WorkerState | None = None,
        max_jobs: int = 1,
        preferred_types: Sequence[str] | None = None,
        *,
        models_loaded: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Assignment]:
        """Up to `max_jobs` of the best jobs this worker may run, each fenced by a token.

        `preferred_types` is accepted for the protocol's sake but never reorders: a
        preference must not let a lower-priority job jump a higher one. The worker's
        warm models (`models_loaded`) reorder only within `warm_window_seconds` of the
        same effective priority (`matching.warm_first`), and only when that is set.
        """
        del preferred_types
        state = state or WorkerState()
        await self._paused_fresh()
        out: list[Assignment] = []
        more = True
        warm = models_loaded if self.settings.warm_window_seconds > 0 else None
        while more and len(out) < max_jobs:
            batch, more = await self._claim_some(worker_id, caps, state, max_jobs - len(out), warm)
            out += batch
            for a in batch:
                state = state.with_job(state.place(caps, a.running))
        await self.observer.assigned(worker_id, out)
        return out

    async def _peek(self, eligible: list[str], depth: int, version: bytes) -> _Candidates | None:
        """The best `depth` queued members across these queues; None if signatures changed.

        `version` is the signatures version `eligible` was computed at: the reply is
        checked against it, not against the version now, which a concurrent refresh
        (a submission's ETA, another claim) may have moved on while this peek was out.
        """
        k = self.keys
        reply = await self.scripts.peek(
            keys=[k.signatures_version, k.counts, *(k.sig_queue(s) for s in eligible)],
            args=[depth],
        )
        if reply[0] != version:
            if reply[0] != self._sig_version:
                await self._refresh_signatures()
            return None
        members = [
            (reply[i].decode(), eligible[int(reply[i + 1]) - 1]) for i in range(2, len(reply), 2)
        ]
        return _Candidates(reply[1], members)

    def _claim_call(
        self,
        worker_id: str,
        eligible: list[str],
        enqueued: bytes,
        tokens: list[str],
        candidates: list[tuple[str, str, str]],
        *,
        version: bytes,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of claim.lua; candidates are (job id, member or "", signature);
        `version`: the signatures version `eligible` was computed at."""
        k = self.keys
        keys = [*self._claim_keys(worker_id), *(k.sig_queue(sig) for sig in eligible)]
        now = self.clock()
        args: list[Any] = [
            worker_id,
            now,
            now + int(self.settings.claim_timeout * 1000),
            self._maxlen,
            enqueued,
            len(tokens),
            len(eligible),
            version,
            *tokens,
        ]
        for job_id, member, sig in candidates:
            keys += [k.job(job_id), k.sig_queue(sig)]
            args.append(member)
        if self._limits_json:
            args.append(self._limits_json)
        return keys, args

    async def _within_limits(self, eligible: list[str]) -> list[str]:
        """`eligible` less the signatures of customers that hold their `max_running`.

        One read of the customers' held counts; claim.lua checks again, atomically.
        """
        limited = {
            c
            for c in {self._specs[s].customer_id for s in eligible}
            if c is not None and self.settings.max_running(c) is not None
        }
        if not limited:
            return eligible
        names = sorted(limited)
        counts = await self._r.hmget(self.keys.counts, [f"held|{c}" for c in names])
        full = {
            c
            for c, n in zip(names, counts, strict=True)
            if int(n or 0) >= (self.settings.max_running(c) or 0)
        }
        return [s for s in eligible if self._specs[s].customer_id not in full]

    @property
    def _limits_json(self) -> str:
        limits = self.settings.customer_max_running
        return json.dumps(limits, separators=(",", ":"), sort_keys=True) if limits else ""

    def _claim_keys(self, worker_id: str) -> list[str]:
        """The first KEYS of claim.lua and reserve.lua (the same in both)."""
        k = self.keys
        return [
            k.queued,
            k.claims,
            k.running,
            k.worker_jobs(worker_id),
            k.counts,
            k.events,
            k.signatures_version,
        ]

    def _assignments(self, won: Any, tokens: list[str]) -> list[Assignment]:
        """The jobs claim.lua handed out, each with its token and the claim's event id."""
        timeout = self.settings.claim_timeout
        event_id = won[0].decode()
        return [
            Assignment(
                member.decode().partition("|")[2], decode_hash(raw), token, timeout, event_id
            )
            for member, raw, token in zip(won[1::2], won[2::2], tokens, strict=False)
        ]

    def _hint(self, member: str, sig: str) -> None:
        """Remember a job this process just queued, as a claim candidate."""
        self._hints[member] = sig
        if len(self._hints) > _HINTS:
            del self._hints[next(iter(self._hints))]

    def _take_hints(self, eligible: list[str]) -> list[tuple[str, str]]:
        """The best jobs this process queued lately that these queues hold (used up)."""
        wanted = set(eligible)
        found = sorted((m, s) for m, s in self._hints.items() if s in wanted)[:2]
        for member, _ in found:
            del self._hints[member]
        return found

    def _batchable(self, caps: WorkerCapabilities, members: list[tuple[str, str]]) -> bool:
        """Whether several of these candidates may be claimed at once.

        Taking one job can change what the worker may take next only through the
        isolation rules (a strict job, a customer limit) and the VRAM budget; without
        those, a batch is
        exactly what one-at-a-time claims would give.
        """
        if caps.customer_access.max_concurrent_customers is not None:
            return False
        return all(
            self._specs[sig].isolation is not Isolation.STRICT
            and not vram_limited(caps, self._specs[sig])
            for _, sig in members
        )

    async def _claim_some(
        self,
        worker_id: str,
        caps: WorkerCapabilities,
        state: WorkerState,
        wanted: int,
        warm: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[list[Assignment], bool]:
        """Some of the best jobs for the worker, and whether looking again may find more."""
        depth = max(_PEEK_DEPTH, wanted)
        spare = 1  # extra candidates to send along, in case others took the first ones
        for _ in range(_CLAIM_ROUNDS):
            eligible = self._eligible(caps, state)
            version = self._sig_version  # what `eligible` was computed at
            if self.settings.customer_max_running:
                eligible = await self._within_limits(eligible)
            cache_key = tuple(eligible)
            cands = self._candidates.get(cache_key)
            hinted = cands is not None and cands.empty and self._take_hints(eligible)
            if hinted:
                # The queues were empty at the last look and this process has queued
                # jobs since: claim the best of those in one call. claim.lua takes it
                # only if it is still the best head of these queues (an unknown
                # `enqueued` makes it check), else answers 0 and we peek.
                cands = _Candidates(b"", hinted)
            elif cands is None or not cands.members:
                cands = await self._peek(eligible, depth, version)
                if cands is None:
                    continue
                if len(self._candidates) >= _CANDIDATE_CACHE:
                    self._candidates.clear()
                self._candidates[cache_key] = cands
                if not cands.members:
                    cands.empty = True
                    return [], False
            # Reserve candidates for this claim, so that claimers in this process never
            # race each other for the same job; other processes are settled by claim.lua.
            take = wanted if self._batchable(caps, cands.members[:wanted]) else 1
            window = 0
            if warm and not hinted:
                window = int(self.settings.warm_window_seconds * 1000)
                if warm_first(cands.members, self._specs, warm, window):
                    take = 1  # the warm job alone; the next claim looks again
            tried = cands.members[: max(take, spare)]
            del cands.members[: len(tried)]
            want = min(take, len(tried))
            tokens = [_token(worker_id) for _ in range(want)]
            keys, args = self._claim_call(
                worker_id,
                eligible,
                cands.enqueued,
                tokens,
                [(m.partition("|")[2], m, sig) for m, sig in tried],
                version=version,
            )
            if window:  # claim.lua's optional ARGV after the limits ('' when none)
                args += ([] if self._limits_json else [""]) + [window]
            won = await self.scripts.claim(keys=keys, args=args)
            if won == 0:  # jobs joined a queue since the peek: they may be better
                self._candidates.pop(cache_key, None)
                continue
            if not won:  # other processes took every candidate: look again, and try more
                self._candidates.pop(cache_key, None)
                spare = _CONTENDED_PEEK_DEPTH
                continue
            if (len(won) - 1) // 2 < want or hinted:
                # Fewer than asked: the rest were taken, or jobs joined a queue since the
                # peek (then one job is claimed). Either way this peek is spent.
                self._candidates.pop(cache_key, None)
            # After a claim from hints, answer at once: the queues were empty a moment
            # ago, so another look would most likely find nothing and only add a trip.
            return self._assignments(won, tokens), not hinted
        return [], False
