"""Follow one ComfyUI prompt's WebSocket frames: progress, failure and the end signal."""

from __future__ import annotations

from typing import Any

from empq.connectors.base import ProgressReporter
from empq.errors import ConnectorError

# An out-of-memory error can pass on a worker with more memory or less load.
_RETRYABLE_EXCEPTIONS = ("OutOfMemory", "CUDA out of memory", "MemoryError")


class PromptTracker:
    """Turns the frames of one prompt into progress reports, an end, or a `ConnectorError`.

    Frames of other prompts are ignored, so concurrent jobs never see each other's
    progress. Progress is the share of the workflow's nodes done, counting a
    running node by its own progress bar; it only goes up and stays below 100
    until the prompt ends.
    """

    def __init__(self, prompt_id: str, node_count: int, progress: ProgressReporter) -> None:
        self.prompt_id = prompt_id
        self.node_count = max(node_count, 1)
        self.progress = progress
        self.done = False
        self.succeeded = False
        self._finished: set[str] = set()
        self._partial: dict[str, float] = {}
        self._reported = 0.0
        self._current: str | None = None

    async def handle(self, frame: dict[str, Any]) -> None:
        """Apply one decoded text frame."""
        data = frame.get("data")
        if not isinstance(data, dict) or data.get("prompt_id") != self.prompt_id:
            return
        kind = frame.get("type")
        if kind == "execution_error":
            raise self.execution_error(data)
        if kind == "execution_interrupted":
            raise self.interrupted(data)
        if kind == "execution_cached":
            self._finished.update(str(n) for n in data.get("nodes") or [])
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                self.done = True
                return
            if self._current is not None:
                self._finished.add(self._current)
            self._current = str(node)
        elif kind == "progress_state":
            for nid, state in (data.get("nodes") or {}).items():
                if not isinstance(state, dict):
                    continue
                if state.get("state") == "finished":
                    self._finished.add(str(nid))
                else:
                    self._partial[str(nid)] = _fraction(state)
        elif kind == "progress":
            self._partial[str(data.get("node"))] = _fraction(data)
        elif kind == "executed":
            self._finished.add(str(data.get("node")))
        elif kind == "execution_success":
            self.succeeded = True
        else:
            return
        await self._report()

    async def _report(self) -> None:
        partial = sum(v for k, v in self._partial.items() if k not in self._finished)
        value = min(99.0, 100 * (len(self._finished) + partial) / self.node_count)
        if value > self._reported:
            self._reported = value
            step = self._current if self._current is not None else None
            await self.progress(value, f"node {step}" if step else None, current_step=step)

    @staticmethod
    def execution_error(data: dict[str, Any]) -> ConnectorError:
        """The error for an `execution_error` frame or history message."""
        exc_type = str(data.get("exception_type", ""))
        text = str(data.get("exception_message", "")).strip()
        retryable = any(m in exc_type or m in text for m in _RETRYABLE_EXCEPTIONS)
        return ConnectorError(
            f"ComfyUI node {data.get('node_id')} ({data.get('node_type')}) failed: {text}",
            error_type="execution_error",
            retryable=retryable,
            details={
                k: data.get(k)
                for k in (
                    "node_id",
                    "node_type",
                    "exception_type",
                    "exception_message",
                    "traceback",
                )
            },
        )

    @staticmethod
    def interrupted(data: dict[str, Any]) -> ConnectorError:
        """The error for a prompt interrupted by someone other than this worker."""
        return ConnectorError(
            f"ComfyUI interrupted the prompt at node {data.get('node_id')}",
            error_type="interrupted",
            retryable=True,
            details={"node_id": data.get("node_id"), "node_type": data.get("node_type")},
        )


def _fraction(state: dict[str, Any]) -> float:
    try:
        value, top = float(state.get("value", 0)), float(state.get("max", 0))
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, min(1.0, value / top)) if top > 0 else 0.0
