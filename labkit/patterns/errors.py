"""Error taxonomy: what went wrong, whether to retry, and whether it may have happened.

Introduced in chapter 05 (retries). Before retrying, a client must know two things about a
failure: is it worth retrying (a 503 may pass, a 400 will not), and did the operation perhaps
happen anyway. Maelstrom calls the second one *definite* (it surely did not happen) versus
*indefinite* (it may have happened: a timeout after the request left). Retrying an indefinite
failure is only safe when the operation is idempotent.

Times are seconds as floats (`retry_after_s`).
"""
from __future__ import annotations

import asyncio
import email.utils
import sys
from dataclasses import dataclass
from enum import Enum


def _aiohttp_module():
    """aiohttp if something already imported it, else None.

    Patterns stay pure: they never import aiohttp. An aiohttp exception can only exist once
    aiohttp has been imported, so looking in `sys.modules` is enough to recognise one.
    """
    return sys.modules.get("aiohttp")


@dataclass(frozen=True)
class _KindInfo:
    retryable: bool
    definite: bool
    why: str


class ErrorKind(Enum):
    """The kinds of failure a service call can have."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    BREAKER_OPEN = "breaker_open"

    @property
    def retryable(self) -> bool:
        """Whether a retry loop should try again after this kind of failure."""
        return _INFO[self].retryable

    @property
    def definite(self) -> bool:
        """True if the operation surely did not happen; False if it may have happened."""
        return _INFO[self].definite

    @property
    def why(self) -> str:
        """One line: why this kind is (not) retryable."""
        return _INFO[self].why


_INFO: dict[ErrorKind, _KindInfo] = {
    ErrorKind.NETWORK: _KindInfo(
        True, False, "connection dropped: often transient, but the request may have arrived"),
    ErrorKind.TIMEOUT: _KindInfo(
        True, False, "no answer in time: the server may still be doing (or have done) the work"),
    ErrorKind.RATE_LIMIT: _KindInfo(
        True, True, "the server refused before working; wait at least Retry-After, then retry"),
    ErrorKind.AUTHENTICATION: _KindInfo(
        False, True, "bad or expired credentials: the same request fails again until they change"),
    ErrorKind.AUTHORIZATION: _KindInfo(
        False, True, "not allowed: retrying cannot grant the permission"),
    ErrorKind.VALIDATION: _KindInfo(
        False, True, "the request itself is wrong: the same bytes get the same answer"),
    ErrorKind.NOT_FOUND: _KindInfo(
        False, True, "the resource does not exist: retrying will not create it"),
    ErrorKind.INTERNAL: _KindInfo(
        True, False, "the server failed midway: may be transient, and part of the work may be done"),
    # 503 means "not now" before any work (Maelstrom's temporarily-unavailable). A 502 from a
    # proxy is murkier (the upstream may have worked); we keep one flag per kind.
    ErrorKind.UNAVAILABLE: _KindInfo(
        True, True, "the server or gateway said 'not now' before working: retry after a pause"),
    ErrorKind.BREAKER_OPEN: _KindInfo(
        False, True, "our own breaker refused the call locally: fail fast, do not spin on it"),
}

_STATUS: dict[int, ErrorKind] = {
    400: ErrorKind.VALIDATION,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.AUTHORIZATION,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    410: ErrorKind.NOT_FOUND,
    422: ErrorKind.VALIDATION,
    429: ErrorKind.RATE_LIMIT,
    500: ErrorKind.INTERNAL,
    502: ErrorKind.UNAVAILABLE,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.TIMEOUT,
}

_DEFAULT_STATUS: dict[ErrorKind, int] = {
    ErrorKind.VALIDATION: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.AUTHORIZATION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


class ServiceError(Exception):
    """A failed service call: its kind, HTTP status (if any) and Retry-After in seconds."""

    def __init__(self, kind: ErrorKind, message: str = "", *, status: int | None = None,
                 retry_after_s: float | None = None):
        if not isinstance(kind, ErrorKind):
            raise ValueError(f"kind must be an ErrorKind, got {kind!r}")
        if retry_after_s is not None and not retry_after_s >= 0:
            raise ValueError(f"retry_after_s must be >= 0 seconds or None, got {retry_after_s!r}")
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message or f"{kind.value}" + (f" (HTTP {status})" if status else ""))

    @classmethod
    def from_status(cls, status: int, message: str = "", *,
                    retry_after_s: float | None = None) -> "ServiceError":
        """The error for an HTTP error status (400-599)."""
        return cls(classify(status=status), message, status=status, retry_after_s=retry_after_s)

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    @property
    def definite(self) -> bool:
        return self.kind.definite

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "message": str(self), "status": self.status,
                "retry_after_s": self.retry_after_s, "retryable": self.kind.retryable,
                "definite": self.kind.definite}


class BreakerOpen(ServiceError):
    """Raised by a circuit breaker that refuses a call (the call never left this process)."""

    def __init__(self, message: str = "circuit breaker is open", *,
                 retry_after_s: float | None = None):
        super().__init__(ErrorKind.BREAKER_OPEN, message, retry_after_s=retry_after_s)


def default_status(kind: ErrorKind) -> int | None:
    """The HTTP status a service would send for `kind` (None for network/breaker_open)."""
    return _DEFAULT_STATUS.get(kind)


def is_service_failure(exc: BaseException) -> bool:
    """True for failures of the remote call; False for bugs in our own code (KeyError...).

    Retries and breakers act only on service failures: retrying a bug never helps.
    """
    if isinstance(exc, (ServiceError, TimeoutError, OSError)):
        return True
    _aiohttp = _aiohttp_module()
    return _aiohttp is not None and isinstance(exc, _aiohttp.ClientError)


def classify(status: int | None = None, exc: BaseException | None = None) -> ErrorKind:
    """Map an HTTP error status or an exception to an ErrorKind.

    A ServiceError keeps its own kind; other exceptions that are not recognised map to
    INTERNAL (use `is_service_failure` to tell them apart from remote failures).
    """
    if exc is not None:
        if isinstance(exc, ServiceError):
            return exc.kind
        # Timeout before OSError: TimeoutError subclasses OSError, and aiohttp's
        # ServerTimeoutError is both a connection error and a timeout.
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return ErrorKind.TIMEOUT
        _aiohttp = _aiohttp_module()
        if _aiohttp is not None:
            if isinstance(exc, _aiohttp.ClientResponseError) and exc.status >= 400:
                return classify(status=exc.status)
            if isinstance(exc, (_aiohttp.ClientConnectionError, _aiohttp.ServerDisconnectedError)):
                return ErrorKind.NETWORK
        if isinstance(exc, (ConnectionError, OSError)):
            return ErrorKind.NETWORK
        if status is None:
            return ErrorKind.INTERNAL
    if status is None:
        raise ValueError("classify needs status (an HTTP status 400-599) or exc (an exception)")
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status in 400..599, got {status!r}")
    if status in _STATUS:
        return _STATUS[status]
    return ErrorKind.VALIDATION if status < 500 else ErrorKind.INTERNAL


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    import time as _time
    now = _time.time() if now_epoch_s is None else now_epoch_s
    return max(0.0, when.timestamp() - now)


def taxonomy_table() -> list[dict]:
    """One row per kind (JSON-able), for the chapter's table."""
    statuses: dict[ErrorKind, list[int]] = {}
    for status, kind in sorted(_STATUS.items()):
        statuses.setdefault(kind, []).append(status)
    return [
        {"kind": k.value, "http_status": statuses.get(k, []), "retryable": k.retryable,
         "definite": k.definite, "why": k.why}
        for k in ErrorKind
    ]
