"""labkit's tracer: SpanRecords through the OpenTelemetry SDK, contextvars, interop, events."""
import asyncio
import importlib.util

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import labkit
from labkit import sim
from labkit.obs import tracing
from labkit.obs.traceparent import parse_traceparent
from labkit.patterns.breaker import CircuitBreaker
from labkit.patterns.deadline import Deadline, DeadlineExceeded
from labkit.patterns.errors import ErrorKind, ServiceError
from labkit.patterns.retry import Retry

W3C = TraceContextTextMapPropagator()


@pytest.fixture(autouse=True)
def fresh():
    tracing.enable(True)
    tracing.clear()
    yield
    tracing.enable(True)
    tracing.clear()


def test_a_child_keeps_its_parents_trace_and_records_say_so():
    async def main():
        with tracing.span("GET /orders/{id}", service="orders", kind="server"):
            await asyncio.sleep(0.5)
            with tracing.span("SELECT", service="orders", attributes={"db": "x"}):
                tracing.add_event("cache miss", key="k")
                await asyncio.sleep(0.25)
        with pytest.raises(ZeroDivisionError):
            with tracing.span("boom", service="orders"):
                1 / 0
    sim.run(main)
    child, root, boom = tracing.finished_spans()
    assert child.trace_id == root.trace_id != boom.trace_id
    assert child.parent_id == root.span_id and root.parent_id is None
    assert (root.kind, root.service, root.status) == ("server", "orders", "ok")
    assert root.duration_s == pytest.approx(0.75) and child.duration_s == pytest.approx(0.25)
    assert child.start_s == pytest.approx(root.start_s + 0.5)        # the loop's clock
    assert child.attributes["db"] == "x"
    assert child.events == (("cache miss", pytest.approx(child.start_s), {"key": "k"}),)
    assert boom.status == "error" and boom.attributes["error.type"] == "ZeroDivisionError"
    assert len(root.trace_id) == 32 and len(root.span_id) == 16
    assert tracing.finished_spans(root.trace_id) == [child, root]


def test_50_concurrent_requests_never_mix():
    """The tutorial kept one span stack for every request; contextvars give each task its own."""
    async def request(i):
        with tracing.span(f"request {i}", service="front", kind="server"):
            await asyncio.sleep(sim.rng("jitter").uniform(0, 1))
            with tracing.span(f"call {i}", service="front", kind="client"):
                await asyncio.sleep(sim.rng("jitter2").uniform(0, 1))
                with tracing.span(f"work {i}", service="back", kind="server"):
                    await asyncio.sleep(0.1)

    async def main():
        await asyncio.gather(*(request(i) for i in range(50)))
    sim.run(main)
    spans = tracing.finished_spans()
    assert len(spans) == 150
    by_id = {s.span_id: s for s in spans}
    traces = {s.trace_id for s in spans}
    assert len(traces) == 50
    for s in spans:
        i = s.name.split()[-1]
        if s.parent_id is None:
            assert s.name == f"request {i}"
            continue
        parent = by_id[s.parent_id]
        assert parent.trace_id == s.trace_id and parent.name.split()[-1] == i


def test_ids_come_from_the_seed():
    def ids(tracer):
        with tracer.span("a", service="s"):
            with tracer.span("b", service="s"):
                pass
        return [(r.trace_id, r.span_id) for r in tracer.finished_spans()]
    assert ids(tracing.Tracer(seed=5)) == ids(tracing.Tracer(seed=5))
    assert ids(tracing.Tracer(seed=5)) != ids(tracing.Tracer(seed=6))
    labkit.set_seed(11)
    tracing.reset()
    first = ids(tracing.default())
    labkit.set_seed(11)
    tracing.reset()
    assert ids(tracing.default()) == first
    labkit.set_seed(2024)


def test_the_store_is_bounded_and_keeps_the_newest():
    t = tracing.Tracer(max_spans=10, seed=1)
    for i in range(25):
        with t.span(f"s{i}", service="x"):
            pass
    assert [r.name for r in t.finished_spans()] == [f"s{i}" for i in range(15, 25)]
    t.clear()
    assert t.finished_spans() == []
    with pytest.raises(ValueError, match="max_spans"):
        tracing.Tracer(max_spans=0)
    with pytest.raises(ValueError, match="kind"):
        t.start("x", service="s", kind="server-ish")
    with pytest.raises(ValueError, match="trace_id must be 32"):
        t.finished_spans("4BF9")


def test_labkit_headers_are_read_by_opentelemetrys_propagator():
    with tracing.span("front", service="front") as s:
        headers = tracing.inject({})
    ctx = s.get_span_context()
    parsed = parse_traceparent(headers["traceparent"])
    assert parsed.trace_id == f"{ctx.trace_id:032x}" and parsed.parent_id == f"{ctx.span_id:016x}"
    # a plain OpenTelemetry app on the other side continues the same trace
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("other").start_as_current_span("back", context=W3C.extract(headers)):
        pass
    [back] = exporter.get_finished_spans()
    assert back.context.trace_id == ctx.trace_id and back.parent.span_id == ctx.span_id


def test_opentelemetrys_headers_are_read_by_labkit():
    provider = TracerProvider()
    with provider.get_tracer("other").start_as_current_span("front") as other:
        carrier = {}
        W3C.inject(carrier)
    carrier["tracestate"] = "congo=t61rcWkgMzE"
    with tracing.span("back", service="back", kind="server", parent=tracing.extract(carrier)):
        again = tracing.inject({})
    [back] = tracing.finished_spans()
    c = other.get_span_context()
    assert back.trace_id == f"{c.trace_id:032x}" and back.parent_id == f"{c.span_id:016x}"
    assert again["tracestate"] == "congo=t61rcWkgMzE"          # tracestate is carried on


@pytest.mark.parametrize("bad", ["None", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                                 "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"])
def test_an_invalid_header_starts_a_new_trace(bad):
    assert tracing.extract({"traceparent": bad, "tracestate": "a=1"}) is None
    with tracing.span("outer", service="x"):
        with tracing.span("server", service="y", parent=tracing.extract({"traceparent": bad})
                          or tracing.ROOT):
            pass
    inner, outer = tracing.finished_spans()
    assert inner.parent_id is None and inner.trace_id != outer.trace_id


def test_no_header_outside_a_span_and_none_when_off():
    assert tracing.inject({}) == {}                   # "no parent" is no header, not "None"
    tracing.enable(False)
    with tracing.span("x", service="s") as s:
        assert not s.is_recording() and tracing.inject({}) == {}
        tracing.add_event("ignored")
    assert tracing.finished_spans() == []


def test_retry_breaker_and_deadline_are_span_events():
    async def main():
        calls = {"n": 0}

        async def flaky():
            calls["n"] += 1
            if calls["n"] < 3:
                raise ServiceError(ErrorKind.UNAVAILABLE, "down", status=503)
            return "ok"
        breaker = CircuitBreaker(window_size=2, minimum_number_of_calls=2, name="pay")

        async def fail():
            raise ServiceError(ErrorKind.UNAVAILABLE, "down", status=503)
        with tracing.span("checkout", service="orders"):
            assert await Retry(max_attempts=3, seed=1, name="pay-retry").call(flaky) == "ok"
            for _ in range(2):
                with pytest.raises(ServiceError):
                    await breaker.call(fail)
            with pytest.raises(DeadlineExceeded):
                await Deadline.after(0.05).run(asyncio.sleep, 1)
    sim.run(main)
    [span] = tracing.finished_spans()
    names = [e[0] for e in span.events]
    assert names == ["retry.retry", "retry.retry", "retry.success", "breaker.state_change",
                     "deadline.exceeded"]
    attrs = dict((n, a) for n, _, a in span.events)
    assert attrs["retry.success"]["attempt"] == 3 and attrs["retry.retry"]["policy"] == "pay-retry"
    assert (attrs["breaker.state_change"]["old"], attrs["breaker.state_change"]["new"]) == \
        ("closed", "open")
    times = [t for _, t, _ in span.events]
    assert times == sorted(times) and span.start_s <= times[0] and times[-1] <= span.end_s


def test_events_outside_a_span_go_nowhere():
    async def main():
        with pytest.raises(DeadlineExceeded):
            Deadline.after(0).check()
    sim.run(main)
    assert tracing.finished_spans() == []


def test_spans_also_reach_an_sdk_exporter_and_otlp_times_are_wall_clock():
    exporter = InMemorySpanExporter()
    t = tracing.Tracer(seed=3, processors=(SimpleSpanProcessor(exporter),))
    with t.span("x", service="s"):
        pass
    [sdk] = exporter.get_finished_spans()
    [rec] = t.finished_spans()
    assert f"{sdk.context.span_id:016x}" == rec.span_id and sdk.start_time / 1e9 == rec.start_s
    shifted = InMemorySpanExporter()
    tracing.WallClockExporter(shifted).export([sdk])
    [wall] = shifted.get_finished_spans()
    import time
    assert abs(wall.start_time / 1e9 - time.time()) < 60
    assert wall.end_time - wall.start_time == sdk.end_time - sdk.start_time


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry.exporter") is not None,
                    reason="the OTLP exporter is installed")
def test_a_missing_otlp_exporter_costs_one_sentence(capsys, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    t = tracing.Tracer(seed=1)
    out = capsys.readouterr().out
    assert t.otlp is False and out.count("\n") == 1 and "not installed" in out
    with t.span("x", service="s"):
        pass
    assert len(t.finished_spans()) == 1


def test_the_current_span_is_opentelemetrys():
    with tracing.span("x", service="s") as s:
        assert otel_trace.get_current_span() is s
        assert tracing.current_ids() == (f"{s.get_span_context().trace_id:032x}",
                                         f"{s.get_span_context().span_id:016x}")
        assert tracing.calling_service() == "s"
    assert tracing.current_ids() is None and tracing.calling_service() == "client"
