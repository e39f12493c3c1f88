"""The dashboard ships whole inside the package and reaches for nothing outside it.

These run without a browser, so a missing asset or a CDN link fails even where
Chromium is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

from empq.dashboard import INDEX_HTML, STATIC_DIR, STATIC_URL_PREFIX

ASSETS = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
IMPORT_RE = re.compile(r"""(?:import|from)\s*(?:[\w{}\s,*]*from\s*)?["'](\.{1,2}/[^"']+)["']""")


def test_index_references_only_assets_that_exist_under_the_static_prefix() -> None:
    html = INDEX_HTML.read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)=["']([^"'#]+)["']""", html)
    local = [r for r in refs if not r.startswith("data:")]
    assert local, "index.html references no assets"
    for ref in local:
        assert ref.startswith(STATIC_URL_PREFIX + "/"), ref
        assert (STATIC_DIR / ref.removeprefix(STATIC_URL_PREFIX + "/")).is_file(), ref


def test_every_module_import_resolves_to_a_shipped_file() -> None:
    modules = [p for p in ASSETS if p.suffix == ".js"]
    assert len(modules) >= 5
    specs = 0
    for module in modules:
        for spec in IMPORT_RE.findall(module.read_text(encoding="utf-8")):
            specs += 1
            target = (module.parent / spec).resolve()
            assert target.is_file(), f"{module.name} imports missing {spec}"
            assert STATIC_DIR.resolve() in target.parents
    assert specs >= 20  # the pattern does see the imports


def test_no_asset_loads_anything_from_another_host() -> None:
    outside = re.compile(r"""(?:src|href|url\(|import|from|fetch\()\s*["']?(?:https?:)?//""")
    for asset in ASSETS:
        text = asset.read_text(encoding="utf-8")
        assert not outside.search(text), f"{asset.relative_to(STATIC_DIR)} reaches outside"


def test_static_dir_is_inside_the_package() -> None:
    package = Path(__import__("empq").__file__).resolve().parent
    assert package in STATIC_DIR.resolve().parents
