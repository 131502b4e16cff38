"""Error taxonomy: status and exception mapping, retryable/definite flags, bad input."""
import asyncio
import json

import aiohttp
import pytest

from labkit.patterns.errors import (BreakerOpen, ErrorKind, ServiceError, classify, is_service_failure,
                           parse_retry_after, taxonomy_table)


@pytest.mark.parametrize("status,kind", [
    (400, ErrorKind.VALIDATION), (422, ErrorKind.VALIDATION), (401, ErrorKind.AUTHENTICATION),
    (403, ErrorKind.AUTHORIZATION), (404, ErrorKind.NOT_FOUND), (408, ErrorKind.TIMEOUT),
    (504, ErrorKind.TIMEOUT), (429, ErrorKind.RATE_LIMIT), (500, ErrorKind.INTERNAL),
    (502, ErrorKind.UNAVAILABLE), (503, ErrorKind.UNAVAILABLE),
    (418, ErrorKind.VALIDATION), (599, ErrorKind.INTERNAL),
])
def test_status_mapping(status, kind):
    assert classify(status=status) is kind


@pytest.mark.parametrize("exc,kind", [
    (TimeoutError(), ErrorKind.TIMEOUT),
    (asyncio.TimeoutError(), ErrorKind.TIMEOUT),
    (aiohttp.ServerTimeoutError(), ErrorKind.TIMEOUT),  # is also a connection error: timeout wins
    (ConnectionResetError(), ErrorKind.NETWORK),
    (OSError(), ErrorKind.NETWORK),
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


def test_retryable_and_definite_flags():
    never = {ErrorKind.VALIDATION, ErrorKind.AUTHENTICATION, ErrorKind.AUTHORIZATION,
             ErrorKind.NOT_FOUND, ErrorKind.BREAKER_OPEN}
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


def test_breaker_open_is_a_service_error():
    e = BreakerOpen(retry_after_s=3.0)
    assert isinstance(e, ServiceError) and e.kind is ErrorKind.BREAKER_OPEN and e.retry_after_s == 3.0


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
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
    assert by_kind["timeout"]["http_status"] == [408, 504]
    assert by_kind["not_found"]["retryable"] is False
    assert all(r["why"] for r in rows)
