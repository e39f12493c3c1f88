"""The public API is what `empq/__init__.py` exports, and each name is importable from it."""

from __future__ import annotations

import empq


def test_all_names_resolve() -> None:
    for name in empq.__all__:
        assert getattr(empq, name) is not None, name


def test_the_contract_names_are_exported() -> None:
    for name in (
        "Client",
        "AsyncClient",
        "Connector",
        "Job",
        "EmpqError",
        "JobNotFound",
        "ValidationError",
        "AuthError",
        "HubUnavailable",
    ):
        assert name in empq.__all__
    assert issubclass(empq.JobNotFound, empq.EmpqError)
    assert isinstance(empq.JobStatus.COMPLETED, str)
