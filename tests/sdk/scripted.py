"""A worker the test drives step by step over the raw protocol (CONTRACT §4)."""

from __future__ import annotations

from typing import Any

from tests.support.hub_fixtures import RawPeer


async def take_job(peer: RawPeer) -> dict[str, Any]:
    """Claim one job and accept it; returns the `job_assigned` message."""
    assigned = await peer.request({"type": "claim_job", "max_jobs": 1}, "job_assigned")
    await peer.send(
        {
            "type": "job_accepted_by_worker",
            "job_id": assigned["job_id"],
            "claim_token": assigned["claim_token"],
        }
    )
    return assigned


async def progress(peer: RawPeer, assigned: dict[str, Any], percent: float, message: str) -> None:
    """Report progress on an accepted job."""
    await peer.send(
        {
            "type": "update_job_progress",
            "job_id": assigned["job_id"],
            "claim_token": assigned["claim_token"],
            "progress": percent,
            "message": message,
        }
    )


async def complete(peer: RawPeer, assigned: dict[str, Any], result: dict[str, Any]) -> None:
    """Finish the job successfully and wait for the hub's acknowledgement."""
    await peer.request(
        {
            "type": "complete_job",
            "job_id": assigned["job_id"],
            "claim_token": assigned["claim_token"],
            "result": result,
        },
        "job_completed_ack",
    )


async def fail(peer: RawPeer, assigned: dict[str, Any], error: str, *, retry: bool) -> None:
    """Fail the attempt and wait for the hub's acknowledgement."""
    await peer.request(
        {
            "type": "fail_job",
            "job_id": assigned["job_id"],
            "claim_token": assigned["claim_token"],
            "error": error,
            "retry": retry,
        },
        "job_failed_ack",
    )
