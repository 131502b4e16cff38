"""labkit.obs.logs: records carry the current span's ids (per asyncio task), the store is
bounded and searchable, and the JSON lines parse."""
import asyncio
import json
import logging

import pytest

from labkit.obs import logs, tracing


@pytest.fixture
def store():
    store = logs.LogStore(max_records=50)
    logger = logging.getLogger("labkit.test_logs")
    handler = logs.StoreHandler(store)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield store
    finally:
        logger.removeHandler(handler)


def test_a_record_inside_a_span_carries_its_trace_and_span_ids(store):
    log = logging.getLogger("labkit.test_logs")
    with tracing.span("checkout", service="orders"):
        ids = tracing.current_ids()
        log.info("reserved %d items", 3, extra={"latency_ms": 12.5})
    log.info("after the span")
    inside, outside = store.search()
    assert (inside["trace_id"], inside["span_id"]) == ids
    assert inside["service"] == "orders" and inside["latency_ms"] == 12.5
    assert inside["message"] == "reserved 3 items"
    assert outside["trace_id"] is None and outside["span_id"] is None
    assert store.search(trace_id=ids[0]) == [inside]


def test_concurrent_requests_log_their_own_trace_ids(store, run):
    log = logging.getLogger("labkit.test_logs")

    async def request(i):
        with tracing.span(f"req {i}", service="orders", parent=tracing.ROOT):
            await asyncio.sleep(0.01 * (3 - i))
            log.info("done %d", i)
            return tracing.current_ids()[0]

    async def main():
        return await asyncio.gather(*(request(i) for i in range(3)))
    trace_ids = run(main())
    assert len(set(trace_ids)) == 3
    for i, tid in enumerate(trace_ids):
        assert [r["message"] for r in store.search(trace_id=tid)] == [f"done {i}"]
        assert all(r["loop_s"] is not None for r in store.search(trace_id=tid))


def test_the_store_is_bounded_and_keeps_the_newest(store):
    log = logging.getLogger("labkit.test_logs")
    for i in range(120):
        log.info("line %d", i)
    assert len(store) == 50
    assert store.search(limit=1000)[0]["message"] == "line 70"
    assert [r["message"] for r in store.search(limit=2)] == ["line 118", "line 119"]


def test_search_by_level_service_and_text(store):
    log = logging.getLogger("labkit.test_logs")
    log.debug("cache miss", extra={"service": "inventory"})
    log.warning("Slow QUERY", extra={"service": "inventory"})
    log.error("payment declined", extra={"service": "payments"})
    assert [r["message"] for r in store.search(level="warning")] == ["Slow QUERY",
                                                                      "payment declined"]
    assert [r["message"] for r in store.search(service="inventory")] == ["cache miss",
                                                                         "Slow QUERY"]
    assert [r["message"] for r in store.search(text="query")] == ["Slow QUERY"]
    assert store.search(service="payments", level="ERROR")[0]["level"] == "ERROR"
    with pytest.raises(ValueError, match="level"):
        store.search(level="loud")


def test_json_lines_parse_and_exceptions_are_named(store):
    log = logging.getLogger("labkit.test_logs")
    try:
        raise KeyError("sku-9")
    except KeyError:
        log.exception("lookup failed", extra={"odd": object()})
    line = store.lines()[-1]
    rec = json.loads(line)
    assert rec["level"] == "ERROR" and rec["error"].startswith("KeyError")
    assert rec["odd"].startswith("<object")
    formatted = logs.JsonFormatter().format(logging.LogRecord("labkit.x", logging.INFO, "", 0,
                                                              "hi %s", ("there",), None))
    assert json.loads(formatted)["message"] == "hi there"


def test_install_is_idempotent():
    store = logs.LogStore(max_records=10)
    logs.install("labkit.test_install", store=store)
    logs.install("labkit.test_install", store=store)
    logger = logging.getLogger("labkit.test_install")
    try:
        logger.info("once")
        assert len(store) == 1
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
    with pytest.raises(ValueError, match="max_records"):
        logs.LogStore(max_records=0)
