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


# ---- gRPC status codes (chapter 03) ---------------------------------------------------------
from labkit.patterns.errors import (FAULT_STATUS_TO_GRPC, GRPC_CODES, GRPC_TO_HTTP,  # noqa: E402
                                    HTTP_TO_GRPC, GrpcError, classify_grpc, grpc_code_name,
                                    grpc_status_for_http, http_status_for_grpc)


def test_grpc_codes_match_grpcs_own_numbers():
    grpc = pytest.importorskip("grpc")
    assert GRPC_CODES == {c.name: c.value[0] for c in grpc.StatusCode}
    assert grpc_code_name(grpc.StatusCode.UNAVAILABLE) == "UNAVAILABLE"
    assert classify_grpc(grpc.StatusCode.RESOURCE_EXHAUSTED) is ErrorKind.RATE_LIMIT


def test_http_to_grpc_is_the_documented_table():
    """grpc/doc/http-grpc-status-mapping.md, every row, and UNKNOWN for the rest."""
    documented = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
                  503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    assert HTTP_TO_GRPC == documented
    for status in range(100, 600):
        assert grpc_status_for_http(status) == documented.get(status, "UNKNOWN"), status


def test_grpc_to_http_is_the_gateways_table():
    """grpc-gateway v2 runtime.HTTPStatusFromCode (google/rpc/code.proto)."""
    assert GRPC_TO_HTTP == {
        "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
        "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500}
    assert set(GRPC_TO_HTTP) == set(GRPC_CODES)
    assert http_status_for_grpc(8) == 429 and http_status_for_grpc("not_found") == 404


def test_the_two_directions_are_not_inverses():
    """The doc's warning made concrete: a 429 through a proxy is UNAVAILABLE, while the
    gateway answers RESOURCE_EXHAUSTED with 429."""
    assert grpc_status_for_http(429) == "UNAVAILABLE"
    assert http_status_for_grpc("RESOURCE_EXHAUSTED") == 429
    assert grpc_status_for_http(http_status_for_grpc("NOT_FOUND")) == "UNIMPLEMENTED"


def test_fault_statuses_map_to_the_codes_a_server_sends():
    assert FAULT_STATUS_TO_GRPC == {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                                    502: "UNAVAILABLE", 503: "UNAVAILABLE",
                                    504: "DEADLINE_EXCEEDED"}
    from labkit.services.faults import ERROR_STATUSES
    assert set(FAULT_STATUS_TO_GRPC) == set(ERROR_STATUSES)
    for status, code in FAULT_STATUS_TO_GRPC.items():
        if status != 502:                              # no code maps to 502
            assert GRPC_TO_HTTP[code] == status


EXCEPTIONS = {"CANCELLED", "UNIMPLEMENTED", "UNAVAILABLE"}    # documented in errors.py


def test_grpc_classification_agrees_with_http_except_the_documented_cases():
    for code, status in GRPC_TO_HTTP.items():
        if code == "OK":
            continue
        same = classify_grpc(code) is classify(status=status)
        assert same != (code in EXCEPTIONS), code


@pytest.mark.parametrize("code,kind,retryable,definite", [
    ("DEADLINE_EXCEEDED", ErrorKind.TIMEOUT, True, False),
    ("UNAVAILABLE", ErrorKind.NETWORK, True, False),
    ("RESOURCE_EXHAUSTED", ErrorKind.RATE_LIMIT, True, True),
    ("INVALID_ARGUMENT", ErrorKind.VALIDATION, False, True),
    ("UNIMPLEMENTED", ErrorKind.NOT_FOUND, False, True),
    ("CANCELLED", ErrorKind.NETWORK, True, False),
    ("INTERNAL", ErrorKind.INTERNAL, True, False),
    ("ALREADY_EXISTS", ErrorKind.CONFLICT, False, True),
    ("UNAUTHENTICATED", ErrorKind.AUTHENTICATION, False, True),
])
def test_classify_grpc(code, kind, retryable, definite):
    assert classify_grpc(code) is kind
    assert (kind.retryable, kind.definite) == (retryable, definite)
    assert classify_grpc(GRPC_CODES[code]) is kind and classify_grpc(code.lower()) is kind


@pytest.mark.parametrize("bad", ["NOPE", 17, -1, None, True, 3.0, ""])
def test_bad_grpc_codes_are_refused(bad):
    with pytest.raises(ValueError, match="code must be a gRPC status code"):
        classify_grpc(bad)
    with pytest.raises(ValueError, match="code"):
        GrpcError(bad)


def test_ok_is_not_a_failure():
    with pytest.raises(ValueError, match="OK is a success"):
        classify_grpc("OK")


@pytest.mark.parametrize("bad", [99, 600, "503", None, 503.0])
def test_grpc_status_for_http_refuses_non_statuses(bad):
    with pytest.raises(ValueError, match="status"):
        grpc_status_for_http(bad)


def test_grpc_error_is_a_service_error_with_a_kind():
    err = GrpcError(14, "connection reset", retry_after_s=0.5)
    assert (err.code, err.code_number, err.details, err.kind) == (
        "UNAVAILABLE", 14, "connection reset", ErrorKind.NETWORK)
    assert isinstance(err, ServiceError) and is_service_failure(err)
    assert classify(exc=err) is ErrorKind.NETWORK and err.retryable and not err.definite
    assert err.status is None and str(err) == "UNAVAILABLE: connection reset"
    d = err.to_dict()
    assert (d["code"], d["kind"], d["retry_after_s"], d["definite"]) == (
        "UNAVAILABLE", "network", 0.5, False)
    json.dumps(d)
