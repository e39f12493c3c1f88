"""The scripts as Redis receives them: the shared Lua functions pasted into each one."""

from __future__ import annotations

import re

import pytest

from empq import scripts


@pytest.mark.parametrize("name", scripts.NAMES)
def test_every_shared_function_a_script_calls_is_defined_in_it_once(name: str) -> None:
    text = scripts.source(name)
    assert "--! include" not in text
    for fn in ("held", "add_usage", "bump", "new_sums", "write_sums"):
        calls = re.search(rf"(?<!function ){fn}\(", text)
        defined = len(re.findall(rf"local function {fn}\(", text))
        if calls:
            # A composed script holds each part's own copy, inside that part's function.
            assert defined >= 1, f"{name} calls {fn}() but does not define it"
        if name not in scripts.COMPOSED:
            assert defined <= 1, f"{name} defines {fn}() {defined} times"


def test_the_shared_functions_live_in_one_file_each() -> None:
    raw = {n: scripts.raw_source(n) for n in scripts.NAMES if n not in scripts.COMPOSED}
    for name, text in raw.items():
        assert "local function held(" not in text, f"{name}.lua has its own copy of held()"
        assert "local function add_usage(" not in text, f"{name}.lua copies add_usage()"
