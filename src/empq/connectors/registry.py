"""Find connector classes by entry-point name (`empq.connectors` group) or `module:Class`.

`module:name` may also name a function decorated with `@empq.connector` (that makes
it a `Connector` subclass).
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from empq.config import WorkerSettings
from empq.connectors.base import Connector
from empq.errors import EmpqError

ENTRY_POINT_GROUP = "empq.connectors"

# Used when the distribution is not installed (running from a source tree), so the
# built-in names still resolve without entry-point metadata.
BUILTIN: dict[str, str] = {
    "simulation": "empq.connectors.simulation:SimulationConnector",
    "comfyui": "empq.connectors.comfyui:ComfyUIConnector",
    "a1111": "empq.connectors.a1111:A1111Connector",
    "rest_sync": "empq.connectors.rest:RestSyncConnector",
    "rest_async": "empq.connectors.rest:RestAsyncConnector",
    "websocket": "empq.connectors.websocket:WebSocketConnector",
}


def _import_module(module_name: str) -> object:
    """Import `module_name`, also from the current directory (as `python -m` would).

    `empq worker` is a console script, whose `sys.path` lacks the directory it was
    started in; a `hello.py` next to the user should load as `hello:hello` anyway.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module_name.partition(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def _import(target: str, label: str) -> type[Connector]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise EmpqError(f"connector '{label}': expected 'module:Class', got '{target}'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise EmpqError(f"connector '{label}': cannot import '{module_name}': {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise EmpqError(f"connector '{label}': '{module_name}' has no '{attr}'") from exc
    if not (isinstance(obj, type) and issubclass(obj, Connector)):
        raise EmpqError(
            f"connector '{label}': '{target}' is not a subclass of empq.Connector "
            "nor a function decorated with @empq.connector"
        )
    return obj


def load_connector_class(spec: str) -> type[Connector]:
    """The class named by `spec`: an entry-point name, or `package.module:Class`."""
    spec = spec.strip()
    if ":" in spec:
        return _import(spec, spec)
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=spec):
        return _import(ep.value, spec)
    if spec in BUILTIN:
        return _import(BUILTIN[spec], spec)
    known = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(BUILTIN))
    raise EmpqError(f"unknown connector '{spec}' (known: {', '.join(known)})")


def create_connectors(specs: list[str], settings: WorkerSettings) -> list[Connector]:
    """One instance of each named connector, built with the worker's settings."""
    if not specs:
        raise EmpqError("no connectors configured (EMPQ_CONNECTORS is empty)")
    return [load_connector_class(spec)(settings) for spec in specs]
