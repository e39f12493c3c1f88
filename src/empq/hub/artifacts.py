"""Output files of jobs, kept on disk under `EMPQ_ARTIFACT_DIR` (never in Redis).

Layout: `<artifact_dir>/<job_id>/<name>`, with the uploader's content type in
`<artifact_dir>/<job_id>/.meta/<name>`. Uploads stream to a temporary file and are
renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import mimetypes
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from empq.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def check_name(name: str) -> str:
    """A safe file name (letters, digits, `._-`; no leading dot), else ValidationError."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"bad artifact name '{name[:60]}'",
            [
                {
                    "field": "name",
                    "message": "use 1-200 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit",
                }
            ],
        )
    return name


class ArtifactStore:
    """Files per job under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, job_id: str) -> Path:
        if not _JOB_ID.fullmatch(job_id):
            raise ValidationError(
                "bad job id for artifacts",
                [{"field": "job_id", "message": "unexpected characters"}],
            )
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path:
        """Where the artifact lives (it may not exist)."""
        return self._dir(job_id) / check_name(name)

    async def save(
        self, job_id: str, name: str, chunks: AsyncIterator[bytes], content_type: str | None
    ) -> int:
        """Stream an upload to disk; returns its size in bytes."""
        target = self.path(job_id, name)
        meta = target.parent / ".meta" / name
        meta.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{name}.{uuid.uuid4().hex}.part"
        size = 0
        try:
            with tmp.open("wb") as f:
                async for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        meta.write_text(content_type or "")
        return size

    def content_type(self, job_id: str, name: str) -> str:
        """The stored content type, else one guessed from the name."""
        meta = self._dir(job_id) / ".meta" / check_name(name)
        stored = meta.read_text().strip() if meta.exists() else ""
        if stored:
            return stored
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
