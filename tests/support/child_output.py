"""A child process's output, copied to a file as it comes, with a wait for a given text."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path
from typing import IO


class ChildOutput:
    """Reads a child's merged stdout/stderr in a thread; `wait_for` wakes on each new line."""

    def __init__(self, proc: subprocess.Popen[bytes], path: Path) -> None:
        assert proc.stdout is not None
        self.path = path
        self._text = ""
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._copy, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _copy(self, stream: IO[bytes]) -> None:
        with self.path.open("ab") as out:
            for line in iter(stream.readline, b""):
                out.write(line)
                out.flush()
                with self._changed:
                    self._text += line.decode(errors="replace")
                    self._changed.notify_all()
        stream.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return self._text

    async def wait_for(self, text: str, within: float) -> bool:
        """Until the output shows `text` (True), or the child closed it first (False).

        Raises TimeoutError after `within` seconds.
        """

        def wait() -> bool:
            with self._changed:
                if not self._changed.wait_for(lambda: text in self._text or self._ended, within):
                    raise TimeoutError(f"no {text!r} in the child's output within {within}s")
                return text in self._text

        return await asyncio.to_thread(wait)
