"""Secrets kept out of log lines: API keys, worker tokens, webhook secrets.

A WebSocket client may put its key in the URL (`ws://hub/?token=KEY`), and uvicorn
logs every upgrade with its full path; at debug level the websockets library logs
whole frames, `register_worker`'s `auth_token` included. `RedactingFilter` sits on
empq's log handler and rewrites any record whose text holds one of these before it
is written, in every format.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

#: Query parameters that carry a credential.
_PARAMS = r"token|api_key|apikey|key|auth_token|access_token|worker_token|secret|password"
_PATTERNS = (
    # ?token=KEY, &api_key=KEY (also URL-encoded in a logged URL)
    re.compile(rf"(?i)((?:[?&]|%3F|%26)(?:{_PARAMS})=)[^&\s\"'#]+"),
    # Authorization: Bearer KEY
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    # "auth_token": "KEY" in a logged JSON frame
    re.compile(rf"(?i)(\\?[\"'](?:{_PARAMS})\\?[\"']\s*:\s*\\?[\"'])[^\"'\\]*"),
    # redis://user:PASSWORD@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"),
)
#: The websockets library's frame log, `< TEXT '{"type": ...}' [82 bytes]`, cuts a long
#: frame in the middle: the tail may hold a credential whose key name was cut off.
_FRAME_TAIL = re.compile(r"^([<>] (?:TEXT|BINARY) .*?\.\.\.).*?(' \[\d+ bytes\])$", re.DOTALL)
#: Cheap test first: most records hold none of these.
_HINTS = ("=", "earer", ":", "%3")


def redact(text: str) -> str:
    """`text` with every credential it holds replaced by `***`."""
    if not any(h in text for h in _HINTS):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return _FRAME_TAIL.sub(rf"\g<1>{MASK}\g<2>", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and exception text) without the secrets it holds."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
