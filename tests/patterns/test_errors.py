"""Error taxonomy: status and exception mapping, retryable/definite flags, bad input."""
import asyncio
import errno
import json
import socket
import ssl

import aiohttp
import pytest

from labkit.patterns.errors import (EVENTS_KEPT, BreakerOpen, ErrorKind, EventLog, ServiceError,
                                    classify, is_service_failure, parse_retry_after, taxonomy_table)


@pytest.mark.parametrize("status,kind", [
    (400, ErrorKind.VALIDATION), (422, ErrorKind.VALIDATION), (401, ErrorKind.AUTHENTICATION),
    (403, ErrorKind.AUTHORIZATION), (404, ErrorKind.NOT_FOUND), (408, "request_timeout"),
    (409, "conflict"), (504, ErrorKind.TIMEOUT), (429, ErrorKind.RATE_LIMIT),
    (500, ErrorKind.INTERNAL), (502, "gateway"), (503, ErrorKind.UNAVAILABLE),
    (418, ErrorKind.VALIDATION), (599, ErrorKind.INTERNAL),
])
def test_status_mapping(status, kind):
    assert classify(status=status) is ErrorKind(kind)


@pytest.mark.parametrize("exc,kind", [
    (TimeoutError(), ErrorKind.TIMEOUT),
    (asyncio.TimeoutError(), ErrorKind.TIMEOUT),
    (aiohttp.ServerTimeoutError(), ErrorKind.TIMEOUT),  # is also a connection error: timeout wins
    (ConnectionResetError(), ErrorKind.NETWORK),
    (OSError(), ErrorKind.INTERNAL),  # not recognisably from the network: our bug until shown otherwise
    (aiohttp.ClientConnectionError(), ErrorKind.NETWORK),
    (aiohttp.ServerDisconnectedError(), ErrorKind.NETWORK),
    (BreakerOpen(), ErrorKind.BREAKER_OPEN),
    (ServiceError(ErrorKind.RATE_LIMIT, status=429), ErrorKind.RATE_LIMIT),
    (KeyError("bug"), ErrorKind.INTERNAL),
])
def test_exception_mapping(exc, kind):
    assert classify(exc=exc) is kind


def test_bugs_are_not_service_failures():
    assert not is_service_failure(KeyError("x"))
    assert not is_service_failure(ValueError("x"))
    assert is_service_failure(TimeoutError())
    assert is_service_failure(ServiceError(ErrorKind.NOT_FOUND))
    assert is_service_failure(aiohttp.ClientConnectionError())


# -- only network/transport errors are service failures ----------------------------------------

NETWORK_ERRORS = [
    ConnectionRefusedError(), ConnectionResetError(), ConnectionAbortedError(), BrokenPipeError(),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"), socket.herror(1, "host"),
    ssl.SSLError(1, "bad record mac"), asyncio.IncompleteReadError(b"", 10),
    OSError(errno.ENETUNREACH, "Network is unreachable"), OSError(errno.EHOSTUNREACH, "No route"),
    aiohttp.ClientOSError(), aiohttp.ClientPayloadError("cut"), aiohttp.ServerDisconnectedError(),
]
PROGRAMMING_ERRORS = [
    FileNotFoundError(errno.ENOENT, "no such file", "users.csv"), PermissionError(), IsADirectoryError(),
    NotADirectoryError(), FileExistsError(), OSError(), OSError(errno.EBADF, "bad fd"),
    aiohttp.InvalidURL("not a url"), KeyError("x"), ValueError("x"), TypeError("x"),
]


@pytest.mark.parametrize("exc", NETWORK_ERRORS, ids=lambda e: type(e).__name__)
def test_network_errors_are_service_failures(exc):
    assert is_service_failure(exc)
    assert classify(exc=exc) is ErrorKind.NETWORK


@pytest.mark.parametrize("exc", PROGRAMMING_ERRORS, ids=lambda e: type(e).__name__)
def test_programming_errors_are_not_service_failures(exc):
    assert not is_service_failure(exc)
    assert classify(exc=exc) is ErrorKind.INTERNAL


def test_timeouts_are_service_failures():
    for exc in (TimeoutError(), asyncio.TimeoutError(), socket.timeout(), aiohttp.ServerTimeoutError()):
        assert is_service_failure(exc) and classify(exc=exc) is ErrorKind.TIMEOUT


# -- taxonomy: which failures are retryable, and which surely did not happen -------------------

@pytest.mark.parametrize("status,retryable,definite", [
    (408, True, True),    # the server says it did not process the request: send it again
    (409, False, True),   # conflicts with the current state: it was not applied
    (429, True, True),    # refused before working: retry after Retry-After
    (500, True, False),
    (502, True, False),   # a gateway's upstream may have done the work
    (503, True, True),    # the service itself said "not now" before working
    (504, True, False),   # a gateway gave up waiting: the upstream may have done the work
    (400, False, True), (401, False, True), (403, False, True), (404, False, True),
])
def test_status_flags(status, retryable, definite):
    e = ServiceError.from_status(status)
    assert (e.retryable, e.definite) == (retryable, definite)
    assert (classify(status=status).retryable, classify(status=status).definite) == (retryable, definite)


def test_a_proxys_503_is_indefinite():
    kind = classify(status=503, from_proxy=True)
    assert kind is ErrorKind.GATEWAY and kind.retryable and not kind.definite
    e = ServiceError.from_status(503, from_proxy=True)
    assert e.kind is ErrorKind.GATEWAY and e.status == 503 and not e.definite
    # Statuses whose meaning does not depend on who sent them are unchanged.
    assert classify(status=429, from_proxy=True) is ErrorKind.RATE_LIMIT
    assert classify(status=502, from_proxy=True) is ErrorKind.GATEWAY


def test_every_mapped_status_is_in_the_table_and_every_row_is_consistent():
    rows = {r["kind"]: r for r in taxonomy_table()}
    listed = {s for r in rows.values() for s in r["http_status"]}
    assert {400, 401, 403, 404, 408, 409, 410, 422, 429, 500, 502, 503, 504} <= listed
    for r in rows.values():
        for status in r["http_status"]:
            kind = classify(status=status)
            assert (kind.value, kind.retryable, kind.definite) == (r["kind"], r["retryable"], r["definite"])
    # The "why" says what the flags say.
    for r in rows.values():
        assert ("may" in r["why"]) is (not r["definite"]), r


def test_retryable_and_definite_flags():
    never = {ErrorKind.VALIDATION, ErrorKind.AUTHENTICATION, ErrorKind.AUTHORIZATION,
             ErrorKind.NOT_FOUND, ErrorKind.BREAKER_OPEN, ErrorKind.CONFLICT}
    for kind in ErrorKind:
        assert kind.retryable is (kind not in never), kind
    # Maelstrom: a timeout or a dropped connection may have happened; a 400 or 503 did not.
    assert not ErrorKind.TIMEOUT.definite and not ErrorKind.NETWORK.definite
    assert not ErrorKind.INTERNAL.definite
    assert ErrorKind.VALIDATION.definite and ErrorKind.UNAVAILABLE.definite
    assert ErrorKind.BREAKER_OPEN.definite and ErrorKind.RATE_LIMIT.definite


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "status"), ({"status": 200}, "400..599"), ({"status": 99}, "400..599"),
    ({"status": "404"}, "400..599"), ({"status": True}, "400..599"),
])
def test_bad_input_names_argument(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        classify(**kwargs)


def test_service_error_fields_and_validation():
    e = ServiceError.from_status(503, retry_after_s=2.5)
    assert (e.kind, e.status, e.retry_after_s) is not None
    assert e.kind is ErrorKind.UNAVAILABLE and e.status == 503 and e.retry_after_s == 2.5
    assert e.retryable and e.definite
    assert json.loads(json.dumps(e.to_dict()))["kind"] == "unavailable"
    with pytest.raises(ValueError, match="retry_after_s"):
        ServiceError(ErrorKind.RATE_LIMIT, retry_after_s=-1)
    with pytest.raises(ValueError, match="kind"):
        ServiceError("timeout")
    for bad in (float("nan"), float("inf"), 10**400, "2"):
        with pytest.raises(ValueError, match="retry_after_s"):
            ServiceError(ErrorKind.RATE_LIMIT, retry_after_s=bad)
    for bad in (503.0, "503", True, 99, 600):
        with pytest.raises(ValueError, match="status"):
            ServiceError(ErrorKind.UNAVAILABLE, status=bad)


def test_breaker_open_is_a_service_error():
    e = BreakerOpen(retry_after_s=3.0)
    assert isinstance(e, ServiceError) and e.kind is ErrorKind.BREAKER_OPEN and e.retry_after_s == 3.0


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("9" * 400) is None  # not an OverflowError
    assert parse_retry_after("\u00b2") is None   # a unicode digit is not delta-seconds
    # HTTP-date 30 s after a fixed "now".
    now = 1_700_000_000.0
    import email.utils
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now_epoch_s=now) == pytest.approx(30.0)


def test_taxonomy_table_is_json_and_complete():
    rows = taxonomy_table()
    assert json.loads(json.dumps(rows)) == rows
    assert [r["kind"] for r in rows] == [k.value for k in ErrorKind]
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["validation"]["http_status"] == [400, 422]
    assert by_kind["timeout"]["http_status"] == [504]
    assert by_kind["request_timeout"]["http_status"] == [408]
    assert by_kind["conflict"]["http_status"] == [409]
    assert by_kind["gateway"]["http_status"] == [502]
    assert by_kind["not_found"]["retryable"] is False
    assert all(r["why"] for r in rows)


def test_event_log_keeps_the_newest_and_takes_slices():
    log = EventLog(3)
    log.extend(range(5))
    assert list(log) == [2, 3, 4] and log[0] == 2 and log[-1] == 4 and log[1:] == [3, 4]
    assert EventLog().maxlen == EVENTS_KEPT == 1000
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="maxlen"):
            EventLog(bad)
