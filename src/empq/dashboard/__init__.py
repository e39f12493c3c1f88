"""The monitor dashboard: a static single page the hub serves at `/` and `/dashboard`.

The page is plain HTML, CSS and native ES modules, shipped inside the package so it
needs no network and no build step. The hub serves `INDEX_HTML` and mounts
`STATIC_DIR` at `/dashboard/static/`; everything else the page needs it fetches
from the hub's own REST API and WebSocket (see docs/dashboard.md).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["INDEX_HTML", "STATIC_DIR", "STATIC_URL_PREFIX"]

#: Folder holding `index.html` and its assets; mount it at `STATIC_URL_PREFIX`.
STATIC_DIR: Path = Path(__file__).resolve().parent / "static"

#: The page itself, served for `GET /` and `GET /dashboard`.
INDEX_HTML: Path = STATIC_DIR / "index.html"

#: Where the page expects its assets (the URLs inside `index.html` use it).
STATIC_URL_PREFIX = "/dashboard/static"
