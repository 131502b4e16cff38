"""Error taxonomy: what went wrong, whether to retry, and whether it may have happened.

Introduced in chapter 05 (retries). Before retrying, a client must know two things about a
failure: is it worth retrying (a 503 may pass, a 400 will not), and did the operation perhaps
happen anyway. Maelstrom calls the second one *definite* (it surely did not happen) versus
*indefinite* (it may have happened: a timeout after the request left). Retrying an indefinite
failure is only safe when the operation is idempotent.

Who answered matters: a 503 from the service itself means "not now", before any work
(definite); a 502, a 504 or a proxy's 503 means a gateway got no good answer from the service
behind it, which may have done the work (indefinite). Only failures of the remote call are
service failures; a FileNotFoundError or a KeyError is a bug in our code, never retried.

Times are seconds as floats (`retry_after_s`). `EventLog` is the bounded event list every
pattern keeps.
"""
from __future__ import annotations

import asyncio
import email.utils
import errno
import socket
import ssl
import sys
from collections import deque
from dataclasses import dataclass
from enum import Enum

from labkit._core.validate import boolean, integer, optional_number

#: How many events a pattern keeps (the newest); summaries use running counters instead.
EVENTS_KEPT = 1000


class EventLog(deque):
    """The newest `EVENTS_KEPT` events of a pattern (a deque that also takes slices).

    Bounded, so a policy used for a day of traffic does not grow without limit; anything a
    summary reports is counted as events arrive, not recomputed from this log.
    """

    def __init__(self, maxlen: int = EVENTS_KEPT):
        super().__init__((), integer("maxlen", maxlen, 1))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self)[index]
        return super().__getitem__(index)


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
    REQUEST_TIMEOUT = "request_timeout"
    RATE_LIMIT = "rate_limit"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    VALIDATION = "validation"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    GATEWAY = "gateway"
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


# Every "why" says what both flags say: an indefinite kind says the work "may" be done, a
# definite one never uses that word (tests/patterns/test_errors.py checks it).
_INFO: dict[ErrorKind, _KindInfo] = {
    ErrorKind.NETWORK: _KindInfo(
        True, False, "the connection failed or broke: often transient; unless it was never made, "
                     "the request may have arrived and been done"),
    ErrorKind.TIMEOUT: _KindInfo(
        True, False, "no answer in time (our timeout, or a gateway's 504): the service may still "
                     "be doing, or have done, the work"),
    ErrorKind.REQUEST_TIMEOUT: _KindInfo(
        True, True, "the server gave up waiting for our request and did not process it (408): "
                    "send it again"),
    ErrorKind.RATE_LIMIT: _KindInfo(
        True, True, "the server refused before working (429): wait at least Retry-After, then retry"),
    ErrorKind.AUTHENTICATION: _KindInfo(
        False, True, "bad or expired credentials: the same request fails again until they change"),
    ErrorKind.AUTHORIZATION: _KindInfo(
        False, True, "not allowed: retrying cannot grant the permission"),
    ErrorKind.VALIDATION: _KindInfo(
        False, True, "the request itself is wrong: the same bytes get the same answer"),
    ErrorKind.CONFLICT: _KindInfo(
        False, True, "not applied: it conflicts with the resource's state (a duplicate, a stale "
                     "version) or with a request still running under the same Idempotency-Key; "
                     "re-read or wait, do not resend blindly"),
    ErrorKind.NOT_FOUND: _KindInfo(
        False, True, "the resource does not exist: retrying will not create it"),
    ErrorKind.INTERNAL: _KindInfo(
        True, False, "the server failed midway: may be transient, and part of the work may be done"),
    # Maelstrom's temporarily-unavailable: "not now", before any work.
    ErrorKind.UNAVAILABLE: _KindInfo(
        True, True, "the service itself said 'not now' before doing any work (503): retry after "
                    "a pause"),
    ErrorKind.GATEWAY: _KindInfo(
        True, False, "a proxy got no good answer from the service behind it (502, or a proxy's "
                     "503): retry after a pause, but the service may have done the work"),
    ErrorKind.BREAKER_OPEN: _KindInfo(
        False, True, "our own breaker refused the call locally: fail fast, do not spin on it"),
}

_STATUS: dict[int, ErrorKind] = {
    400: ErrorKind.VALIDATION,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.AUTHORIZATION,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.REQUEST_TIMEOUT,
    409: ErrorKind.CONFLICT,
    410: ErrorKind.NOT_FOUND,
    422: ErrorKind.VALIDATION,
    429: ErrorKind.RATE_LIMIT,
    500: ErrorKind.INTERNAL,
    502: ErrorKind.GATEWAY,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.TIMEOUT,
}

_DEFAULT_STATUS: dict[ErrorKind, int] = {
    ErrorKind.VALIDATION: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.AUTHORIZATION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REQUEST_TIMEOUT: 408,
    ErrorKind.CONFLICT: 409,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.GATEWAY: 502,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


class ServiceError(Exception):
    """A failed service call: its kind, HTTP status (if any) and Retry-After in seconds."""

    def __init__(self, kind: ErrorKind, message: str = "", *, status: int | None = None,
                 retry_after_s: float | None = None):
        if not isinstance(kind, ErrorKind):
            raise ValueError(f"kind must be an ErrorKind, got {kind!r}")
        retry_after_s = optional_number("retry_after_s", retry_after_s, 0.0, unit=" seconds")
        if status is not None:
            status = integer("status", status, 100, 599)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message or f"{kind.value}" + (f" (HTTP {status})" if status else ""))

    @classmethod
    def from_status(cls, status: int, message: str = "", *, retry_after_s: float | None = None,
                    from_proxy: bool = False) -> "ServiceError":
        """The error for an HTTP error status (400-599); `from_proxy`: see `classify`."""
        return cls(classify(status=status, from_proxy=from_proxy), message, status=status,
                   retry_after_s=retry_after_s)

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


#: OSErrors that come from the network even when they are not ConnectionErrors (asyncio's
#: open_connection raises a plain OSError for an unreachable network, for instance).
_NETWORK_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "EHOSTDOWN", "ENETRESET", "ECONNREFUSED",
    "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT") if hasattr(errno, n))

# Transport failures outside aiohttp: ConnectionError and its subclasses (refused, reset,
# aborted, broken pipe), name resolution (gaierror, herror), TLS, and a stream cut mid-message.
_TRANSPORT = (ConnectionError, socket.gaierror, socket.herror, ssl.SSLError,
              asyncio.IncompleteReadError)


def _is_aiohttp_failure(exc: BaseException) -> bool:
    """An aiohttp.ClientError, except an invalid URL that we built ourselves (a bug)."""
    aio = _aiohttp_module()
    if aio is None or not isinstance(exc, aio.ClientError):
        return False
    ours = tuple(c for c in (getattr(aio, "InvalidURL", None), getattr(aio, "NonHttpUrlClientError", None))
                 if c is not None)
    redirect = getattr(aio, "RedirectClientError", ())  # a bad URL the *server* redirected us to
    return not (isinstance(exc, ours) and not isinstance(exc, redirect))


def _is_transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSPORT) or \
        (type(exc) is OSError and exc.errno in _NETWORK_ERRNOS)


def is_service_failure(exc: BaseException) -> bool:
    """True for failures of the remote call; False for bugs in our own code.

    Service failures: a ServiceError, a timeout, a network/transport error (ConnectionError and
    its subclasses, DNS errors, TLS errors, a stream cut short, an OSError whose errno is a
    network one) and aiohttp's client errors. Everything else is ours: KeyError, and also
    FileNotFoundError, PermissionError and the other OSErrors. Retries and breakers act only on
    service failures: retrying a bug never helps, and a bug says nothing about the service.
    """
    return isinstance(exc, (ServiceError, TimeoutError)) or _is_transport_failure(exc) or \
        _is_aiohttp_failure(exc)


def classify(status: int | None = None, exc: BaseException | None = None, *,
             from_proxy: bool = False) -> ErrorKind:
    """Map an HTTP error status or an exception to an ErrorKind.

    A ServiceError keeps its own kind; exceptions that are not service failures (see
    `is_service_failure`) map to INTERNAL. `from_proxy=True` says a proxy or gateway, not the
    service, sent the status: its 503 is then GATEWAY (indefinite), not UNAVAILABLE.
    """
    if exc is not None:
        if isinstance(exc, ServiceError):
            return exc.kind
        # Timeout first: TimeoutError subclasses OSError, and aiohttp's ServerTimeoutError is
        # both a connection error and a timeout.
        if isinstance(exc, TimeoutError):
            return ErrorKind.TIMEOUT
        aio = _aiohttp_module()
        if aio is not None and isinstance(exc, aio.ClientResponseError) and \
                isinstance(exc.status, int) and 400 <= exc.status <= 599:
            return classify(status=exc.status, from_proxy=from_proxy)
        if _is_transport_failure(exc):
            return ErrorKind.NETWORK
        if aio is not None and isinstance(exc, aio.ClientError) and \
                not isinstance(exc, aio.ClientResponseError) and _is_aiohttp_failure(exc):
            return ErrorKind.NETWORK  # connection, payload, disconnect errors
        if status is None:
            return ErrorKind.INTERNAL
    if status is None:
        raise ValueError("classify needs status (an HTTP status 400-599) or exc (an exception)")
    boolean("from_proxy", from_proxy)
    status = integer("status", status, 400, 599, unit=" (an HTTP error status)")
    if status == 503 and from_proxy:
        return ErrorKind.GATEWAY
    if status in _STATUS:
        return _STATUS[status]
    return ErrorKind.VALIDATION if status < 500 else ErrorKind.INTERNAL


def parse_retry_after(value: str | None, now_epoch_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent/bad.

    Header values come from the network, so a bad one gives None, never an exception.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        if len(value) > 15:  # beyond ~30 million years: not a wait anyone means
            return None
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


# ---- gRPC status codes (chapter 03) ---------------------------------------------------------
# Names and numbers as in grpc/doc/statuscodes.md; kept as plain strings and ints so this
# module stays pure (no grpc import). A grpc.StatusCode is accepted by its `.name`.
GRPC_CODES: dict[str, int] = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
_GRPC_NAMES = {number: name for name, number in GRPC_CODES.items()}

# Same kind as the HTTP status grpc-gateway gives the code (GRPC_TO_HTTP), except:
# CANCELLED (499 is no status `classify` knows): the call was cut off, it may have arrived;
# UNIMPLEMENTED (501 would be INTERNAL): the method does not exist, retrying cannot help;
# UNAVAILABLE (503 is definite): grpc's client library also reports a connection that broke
# mid-call as UNAVAILABLE, and statuscodes.md warns it "is not always safe to retry
# non-idempotent operations" -- so it is retryable but indefinite.
_GRPC_KIND: dict[str, ErrorKind] = {
    "CANCELLED": ErrorKind.NETWORK, "UNKNOWN": ErrorKind.INTERNAL,
    "INVALID_ARGUMENT": ErrorKind.VALIDATION, "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
    "NOT_FOUND": ErrorKind.NOT_FOUND, "ALREADY_EXISTS": ErrorKind.CONFLICT,
    "PERMISSION_DENIED": ErrorKind.AUTHORIZATION, "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMIT,
    "FAILED_PRECONDITION": ErrorKind.VALIDATION, "ABORTED": ErrorKind.CONFLICT,
    "OUT_OF_RANGE": ErrorKind.VALIDATION, "UNIMPLEMENTED": ErrorKind.NOT_FOUND,
    "INTERNAL": ErrorKind.INTERNAL, "UNAVAILABLE": ErrorKind.NETWORK,
    "DATA_LOSS": ErrorKind.INTERNAL, "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
}

#: grpc/doc/http-grpc-status-mapping.md: the code a gRPC *client* reports when a response
#: came back without grpc-status (an HTTP proxy answered). Every other status -> UNKNOWN.
#: The doc says servers must not use it to choose a status: it is neither symmetric nor 1-to-1.
HTTP_TO_GRPC: dict[int, str] = {
    400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "UNIMPLEMENTED",
    429: "UNAVAILABLE", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE",
}

#: The opposite direction, as a gateway serving gRPC over HTTP/JSON answers (grpc-gateway v2's
#: runtime.HTTPStatusFromCode, the mapping in google/rpc/code.proto).
GRPC_TO_HTTP: dict[str, int] = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500,
}

#: The code a gRPC *server* sends for the failure an HTTP service answers with this status
#: (labkit's fault statuses): GRPC_TO_HTTP read backwards, 502 (no code maps to it) as 503.
FAULT_STATUS_TO_GRPC: dict[int, str] = {
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def grpc_code_name(code) -> str:
    """The canonical name of a gRPC code given as a name ("unavailable"), a number (14) or a
    grpc.StatusCode; ValueError for anything else."""
    name = getattr(code, "name", code)
    if isinstance(name, str) and name.upper() in GRPC_CODES:
        return name.upper()
    if isinstance(name, int) and not isinstance(name, bool) and name in _GRPC_NAMES:
        return _GRPC_NAMES[name]
    raise ValueError(f"code must be a gRPC status code name ({', '.join(GRPC_CODES)}) or "
                     f"number 0..16, got {code!r}")


def classify_grpc(code) -> ErrorKind:
    """The ErrorKind of a failed gRPC call's status code (OK is no failure: ValueError)."""
    name = grpc_code_name(code)
    if name == "OK":
        raise ValueError("code OK is a success, not a failure to classify")
    return _GRPC_KIND[name]


def grpc_status_for_http(status: int) -> str:
    """HTTP_TO_GRPC with its default: the code a gRPC client reports for an HTTP `status`."""
    status = integer("status", status, 100, 599, unit=" (an HTTP status)")
    return HTTP_TO_GRPC.get(status, "UNKNOWN")


def http_status_for_grpc(code) -> int:
    """GRPC_TO_HTTP: the HTTP status a gateway answers for a gRPC `code`."""
    return GRPC_TO_HTTP[grpc_code_name(code)]


class GrpcError(ServiceError):
    """A failed gRPC call: `code` (name), `details`, and the `kind` from `classify_grpc`.

    `retry_after_s` comes from the ``grpc-retry-pushback-ms`` trailer when the server sent one.
    `status` (the HTTP status) stays None: a gRPC call has none.
    """

    def __init__(self, code, details: str = "", *, retry_after_s: float | None = None):
        self.code = grpc_code_name(code)
        self.details = str(details)
        super().__init__(classify_grpc(self.code), f"{self.code}: {self.details}" if self.details
                         else self.code, retry_after_s=retry_after_s)

    @property
    def code_number(self) -> int:
        return GRPC_CODES[self.code]

    def to_dict(self) -> dict:
        return {**super().to_dict(), "code": self.code, "details": self.details}
