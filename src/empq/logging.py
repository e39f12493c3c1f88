"""Logging for every empq process: stdlib `logging`, set up once from the settings.

`EMPQ_LOG_LEVEL` (`debug`, `info`, `warning`, `error`) sets the level;
`EMPQ_LOG_FORMAT` picks `console` (one readable line per record) or `json` (one JSON
object per line, for log collectors). Extra fields passed with `extra={...}` appear
in both.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from empq.config import CommonSettings
from empq.redact import RedactingFilter

#: Attributes every `LogRecord` has; anything else was passed in `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured duplicate of the message
}

#: Third-party loggers that are chatty at `info`; they follow our level only at `debug`.
_NOISY = ("websockets", "httpx", "httpcore", "uvicorn.access")

_HANDLER_NAME = "empq"


def _utc(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, UTC)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}


class ConsoleFormatter(logging.Formatter):
    """`12:04:33.512 INFO  empq.hub: message key=value ...` (UTC time)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = _utc(record).strftime("%H:%M:%S.%f")[:-3]
        line = f"{stamp} {record.levelname:<5} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts` (ISO 8601 UTC), `level`, `logger`, `message`, extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _utc(record).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(
    settings: CommonSettings | None = None,
    *,
    level: str | None = None,
    fmt: Literal["console", "json"] | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Send every log record to stderr (or `stream`) in the configured format.

    Safe to call more than once: it replaces its own handler and leaves any other
    handler (pytest's, an application's) alone. Arguments win over `settings`,
    which win over the environment.
    """
    settings = settings or CommonSettings()
    level_name = (level or settings.log_level).upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if (fmt or settings.log_format) == "json" else ConsoleFormatter()
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    quiet = logging.DEBUG if level_name == "DEBUG" else logging.WARNING
    for name in _NOISY:
        logging.getLogger(name).setLevel(quiet)
    # uvicorn installs its own handlers unless told otherwise; route them through ours
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
