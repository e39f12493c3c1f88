"""How HTTP failures of a service map onto `ConnectorError` types, shared by the HTTP connectors.

| error_type            | when                                          | retry helps |
|-----------------------|-----------------------------------------------|-------------|
| `service_unavailable` | connection refused / dropped, DNS             | yes         |
| `service_timeout`     | the service did not answer in time            | yes         |
| `service_error`       | 5xx, 408, 429                                 | yes         |
| `service_rejected`    | other 4xx (the request itself is wrong)       | no          |
| `invalid_response`    | 2xx whose body is not what the API promises   | yes         |
"""

from __future__ import annotations

from typing import Any

import httpx

from empq.errors import ConnectorError

_RETRYABLE_4XX = frozenset({408, 425, 429})


def transport_error(service: str, exc: httpx.HTTPError) -> ConnectorError:
    """A `ConnectorError` for a request that got no HTTP answer."""
    if isinstance(exc, httpx.TimeoutException):
        return ConnectorError(
            f"{service} did not answer in time: {type(exc).__name__}",
            error_type="service_timeout",
            retryable=True,
        )
    return ConnectorError(
        f"{service} unreachable: {type(exc).__name__}: {exc}",
        error_type="service_unavailable",
        retryable=True,
    )


def body_of(response: httpx.Response) -> Any:
    """The response's JSON, or its text when it is not JSON (bounded for error details)."""
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def status_error(service: str, response: httpx.Response) -> ConnectorError:
    """A `ConnectorError` for a non-2xx reply, classified by status code."""
    code = response.status_code
    details = {"status_code": code, "body": body_of(response)}
    if code >= 500 or code in _RETRYABLE_4XX:
        return ConnectorError(
            f"{service} failed with HTTP {code}",
            error_type="service_error",
            retryable=True,
            details=details,
        )
    return ConnectorError(
        f"{service} rejected the request with HTTP {code}",
        error_type="service_rejected",
        retryable=False,
        details=details,
    )


def invalid_response(service: str, problem: str, details: Any = None) -> ConnectorError:
    """A `ConnectorError` for a 2xx reply whose body breaks the service's API."""
    return ConnectorError(
        f"{service} sent an unexpected reply: {problem}",
        error_type="invalid_response",
        retryable=True,
        details=details,
    )


async def request(
    client: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; any transport failure becomes a classified `ConnectorError`."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(service, exc) from exc


async def json_request(
    client: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any
) -> Any:
    """Send one request and return its JSON body; non-2xx and non-JSON become errors."""
    response = await request(client, service, method, url, **kwargs)
    if not response.is_success:
        raise status_error(service, response)
    try:
        return response.json()
    except ValueError as exc:
        raise invalid_response(service, f"{method} {url} did not return JSON") from exc
