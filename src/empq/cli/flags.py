"""Command-line flags built from the settings classes.

Each flag names its `EMPQ_*` variable (typer's `envvar=`) and shows the setting's
real default (`show_default=`), read from the field of `empq.config`, so `--help`
and the settings can never disagree. The flag's value itself stays `None` unless
given (or its variable is set): the settings class then applies the default.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic_settings import BaseSettings


def shown_default(cls: type[BaseSettings], field: str) -> str:
    """The setting's default as `--help` shows it (`unset` for none)."""
    info = cls.model_fields[field]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    if value is None or value == []:
        return "unset"
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting(
    cls: type[BaseSettings],
    field: str,
    help: str,
    *names: str,
    default_text: str | None = None,
    **kwargs: Any,
) -> Any:
    """A `typer.Option` for the setting `field` of `cls` (`--field-name` unless `names`)."""
    flags = names or ("--" + field.replace("_", "-"),)
    return typer.Option(
        *flags,
        envvar=f"EMPQ_{field.upper()}",
        show_envvar=True,
        show_default=default_text if default_text is not None else shown_default(cls, field),
        help=help,
        **kwargs,
    )


def setting_fields(command: Any) -> set[str]:
    """The settings fields a click command has flags for (from their `EMPQ_*` variable)."""
    found = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str) and envvar.startswith("EMPQ_"):
            found.add(envvar.removeprefix("EMPQ_").lower())
    return found
