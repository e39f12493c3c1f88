"""Output files of jobs, kept on disk under `EMPQ_ARTIFACT_DIR` (never in Redis).

Layout: `<artifact_dir>/<job_id>/<name>`, with the uploader's content type in
`<artifact_dir>/<job_id>/.meta/<name>`. Uploads stream to a temporary file and are
renamed into place, so a reader never sees half a file; an upload cut off or past
`EMPQ_ARTIFACT_MAX_BYTES` leaves nothing behind.

Nothing inside the artifact folder is reached through a symbolic link: job folders,
`.meta` and files are opened relative to their parent's descriptor with
`O_NOFOLLOW`, so a link planted there (to `/etc`, to another job) is refused rather
than served or written through. (The folder itself may be a link: that is the
operator's choice.)

Files are served with a type from `SAFE_TYPES` only (images, video, audio, JSON,
plain text); anything else, SVG and HTML included, goes out as
`application/octet-stream` with `Content-Disposition: attachment`, so an uploaded
page can never run script on the hub's origin (see `api_artifacts` for the headers).
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import re
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from empq.errors import EmpqError, ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
_CHUNK = 64 * 1024

#: Content types served as themselves (inline); anything else is a download.
SAFE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/tiff",
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "audio/mpeg",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/flac",
        "audio/webm",
        "audio/mp4",
        "application/json",
        "text/plain",
        "application/octet-stream",
    }
)
#: What every other type is served as.
DOWNLOAD_TYPE = "application/octet-stream"


class ArtifactTooLarge(EmpqError):
    """An upload past `EMPQ_ARTIFACT_MAX_BYTES`."""

    code = "ARTIFACT_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"artifact larger than the limit of {limit} bytes (EMPQ_ARTIFACT_MAX_BYTES)",
            details={"limit": limit},
        )
        self.limit = limit


class UnsafeArtifactPath(EmpqError):
    """A job folder or file inside the artifact folder is a symbolic link (or not a file)."""

    code = "UNSAFE_ARTIFACT_PATH"


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


def check_job_id(job_id: str) -> str:
    """A job id usable as a folder name, else ValidationError."""
    if not _JOB_ID.fullmatch(job_id):
        raise ValidationError(
            "bad job id for artifacts", [{"field": "job_id", "message": "unexpected characters"}]
        )
    return job_id


def served_type(stored: str | None, name: str) -> tuple[str, bool]:
    """(Content-Type to serve, whether inline) for a stored type (else guessed from `name`)."""
    media = (stored or "").partition(";")[0].strip().lower()
    if not media:
        media = mimetypes.guess_type(name)[0] or DOWNLOAD_TYPE
    if media not in SAFE_TYPES:
        return DOWNLOAD_TYPE, False
    if media == "text/plain":
        return "text/plain; charset=utf-8", True
    return media, media != DOWNLOAD_TYPE


@dataclass(slots=True)
class OpenArtifact:
    """A stored file opened for reading: its chunks, size and stored content type."""

    fd: int
    size: int
    stored_type: str | None

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, closing it at the end (or when the reader goes away)."""
        with os.fdopen(self.fd, "rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


class ArtifactStore:
    """Files per job under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, job_id: str, name: str) -> Path:
        """Where the artifact lives (it may not exist); validates both names."""
        return self.root / check_job_id(job_id) / check_name(name)

    @contextlib.contextmanager
    def _job_dir(self, job_id: str, *, create: bool) -> Iterator[int]:
        """The job folder's descriptor (FileNotFoundError if absent and not `create`)."""
        check_job_id(job_id)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(job_id, dir_fd=root)
            fd = _open_dir(job_id, root)
        finally:
            os.close(root)
        try:
            yield fd
        finally:
            os.close(fd)

    async def save(
        self,
        job_id: str,
        name: str,
        chunks: AsyncIterator[bytes],
        content_type: str | None,
        *,
        max_bytes: int,
    ) -> int:
        """Stream an upload to disk; returns its size. Nothing stays if it fails part-way."""
        check_name(name)
        with self._job_dir(job_id, create=True) as job_fd:
            tmp = f".{name}.{uuid.uuid4().hex}.part"
            size = 0
            done = False
            out = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=job_fd
            )
            try:
                with os.fdopen(out, "wb") as f:
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > max_bytes:
                            raise ArtifactTooLarge(max_bytes)
                        f.write(chunk)
                _write_meta(job_fd, name, content_type or "")
                os.replace(tmp, name, src_dir_fd=job_fd, dst_dir_fd=job_fd)
                done = True
            finally:
                if not done:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp, dir_fd=job_fd)
        return size

    def open(self, job_id: str, name: str) -> OpenArtifact | None:
        """The stored file opened for reading; None if there is none."""
        check_name(name)
        try:
            with self._job_dir(job_id, create=False) as job_fd:
                fd = _open_file(name, job_fd)
                try:
                    stored = _read_meta(job_fd, name)
                    size = os.fstat(fd).st_size
                except BaseException:
                    os.close(fd)
                    raise
        except FileNotFoundError:
            return None
        return OpenArtifact(fd, size, stored)

    def content_type(self, job_id: str, name: str) -> str:
        """The type the file is served with (see `served_type`)."""
        try:
            with self._job_dir(job_id, create=False) as job_fd:
                stored = _read_meta(job_fd, name)
        except FileNotFoundError:
            stored = None
        return served_type(stored, check_name(name))[0]


def _open_dir(name: str, parent: int) -> int:
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except (NotADirectoryError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UnsafeArtifactPath(f"'{name}' in the artifact folder is not a plain folder") from exc


def _open_file(name: str, parent: int) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symbolic link
        raise UnsafeArtifactPath(f"artifact '{name}' is not a plain file") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeArtifactPath(f"artifact '{name}' is not a plain file")
    return fd


def _write_meta(job_fd: int, name: str, content_type: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(".meta", dir_fd=job_fd)
    meta = _open_dir(".meta", job_fd)
    try:
        tmp = f".{name}.{uuid.uuid4().hex}"
        fd = os.open(tmp, _NEW_FILE, 0o644, dir_fd=meta)
        with os.fdopen(fd, "w") as f:
            f.write(content_type[:200])
        os.replace(tmp, name, src_dir_fd=meta, dst_dir_fd=meta)
    finally:
        os.close(meta)


def _read_meta(job_fd: int, name: str) -> str | None:
    try:
        meta = _open_dir(".meta", job_fd)
    except (FileNotFoundError, UnsafeArtifactPath):
        return None
    try:
        fd = _open_file(name, meta)
    except (FileNotFoundError, UnsafeArtifactPath):
        return None
    finally:
        os.close(meta)
    with os.fdopen(fd) as f:
        return f.read(200).strip() or None
