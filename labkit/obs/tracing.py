"""labkit's tracer: OpenTelemetry spans, kept as `SpanRecord`s and fed to the SDK (chapter 07).

A span is one timed step of one request (a parcel's scan at one depot); spans of one request
share a trace id and point at their parent span, so they form a tree. labkit's clients,
services, broker and gRPC calls make spans automatically; `finished_spans(trace_id)` gives the
tree's records for the waterfall chart (labkit/ui/waterfall.py) and the critical path.

Why it is right where the tutorial's TraceManager was wrong:

- the current span lives in a `contextvars` variable (OpenTelemetry's context), so every
  asyncio task — every concurrent request — sees its own chain, never a shared stack;
- a child span keeps its parent's trace id; only a request with no (or an invalid) incoming
  `traceparent` starts a new trace (W3C Trace Context, see labkit/obs/traceparent.py);
- ids come from a seeded generator (one stream per tracer name, from the course seed), so
  a re-run notebook shows the same ids (`reset()` restarts the stream).

Clock: `start_s`/`end_s` are seconds on the running loop's clock (`loop.time()`, which asyncio
takes from time.monotonic(); virtual seconds inside labkit.sim). Every loop of one process
shares that clock, so spans of services in one process line up on one waterfall. Outside a
running loop (a SyncClient thread) time.monotonic() is read: the same clock. Only the optional
OTLP export (OTEL_EXPORTER_OTLP_ENDPOINT) shifts times to the wall clock, as collectors expect.

OpenTelemetry: a labkit `Span` is an OTel API span (OTel's context, propagator and
`get_current_span` see it); the tracer's `provider` is an OTel SDK TracerProvider with labkit's
seeded id generator, and its span processors (any SDK exporter) receive every ended span as an
SDK ReadableSpan. Tracing is on by default: a span costs a few microseconds, the store is
bounded (`max_spans`, newest kept), and `enable(False)` switches it off.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (Event, ReadableSpan, SynchronousMultiSpanProcessor,
                                     TracerProvider)
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode,
                                 TraceFlags)

from labkit._core import seeding, validate
from labkit.obs import traceparent as tp

__all__ = ["ROOT", "Span", "SpanRecord", "Tracer", "add_event", "attach", "calling_service",
           "clear", "current_ids", "default", "detach", "enable", "error", "extract",
           "finished_spans", "http_status", "inject", "outgoing", "reset",
           "set_default", "span"]

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
         "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}
ROOT = otel_context.Context()          # "no parent": pass as parent= to start a new trace
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SCOPE = InstrumentationScope("labkit")


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, as the waterfall, critical path and sampling code read it."""
    trace_id: str           # 32 lowercase hex
    span_id: str            # 16 lowercase hex
    parent_id: str | None   # the parent span's id; None for the trace's root
    name: str               # "GET /items/{id}", "publish kitchen", ...
    service: str            # "orders", "inventory", "client", "broker", ...
    kind: str               # "server" | "client" | "producer" | "consumer" | "internal"
    start_s: float          # loop clock seconds (see the module docstring)
    end_s: float
    status: str             # "ok" | "error"
    attributes: dict        # (treat as read-only)
    events: tuple           # ((name, t_s, attrs_dict), ...)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def now_ns() -> int:
    """The span clock in integer nanoseconds: the running loop's time, else time.monotonic()."""
    try:
        t = asyncio.get_running_loop().time()
    except RuntimeError:
        t = time.monotonic()
    return int(t * 1e9)


class SeededIds(IdGenerator):
    """OpenTelemetry ids from the seeded stream `name` (never all-zero: invalid in W3C).

    Derived from (seed, name) alone (`seeding.rng`), so `restart()` after `labkit.set_seed`
    gives the same ids again; the stream also restarts by itself when the course seed changes.
    Two tracers with the same name and seed draw the same ids: name a second tracer."""

    def __init__(self, seed: int | None = None, name: str = "tracing"):
        self._fixed_seed, self.name = seed, validate.text("name", name)
        self._lock = threading.Lock()
        self.restart()

    def restart(self) -> None:
        with self._lock:
            self._seed = seeding.course_seed() if self._fixed_seed is None else self._fixed_seed
            self._rng = seeding.rng(self.name, self._fixed_seed)

    def _bits(self, n: int) -> int:
        if self._fixed_seed is None and seeding.course_seed() != self._seed:
            self.restart()
        with self._lock:
            while True:
                x = self._rng.getrandbits(n)
                if x:
                    return x

    def generate_span_id(self) -> int:
        return self._bits(64)

    def generate_trace_id(self) -> int:
        return self._bits(128)


class Span(otel_trace.Span):
    """labkit's span: OpenTelemetry's API `Span`, recorded in a few microseconds.

    The SDK's own span costs about ten times more (mostly checking attributes), too much for a
    layer every request crosses. An ended span goes to the tracer's store and, as an SDK
    `ReadableSpan`, to the SDK span processors (exporters) the tracer was given. Because it is
    an API span, OpenTelemetry's context, propagators and `get_current_span` work with it."""

    def __init__(self, tracer: "Tracer", name: str, context: SpanContext,
                 parent: SpanContext | None, kind: str, attributes: dict, start_ns: int):
        self._tracer, self._context, self.parent = tracer, context, parent
        self.name, self.kind, self.attributes = name, kind, attributes
        self.events: list = []
        self.start_ns, self.end_ns = start_ns, None
        self.status, self.status_text, self._record = "ok", "", None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self.end_ns is None

    def set_attribute(self, key: str, value) -> None:
        if self.end_ns is None:
            self.attributes[key] = value

    def set_attributes(self, attributes) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes=None, timestamp: int | None = None) -> None:
        if self.end_ns is None:
            self.events.append((name, now_ns() if timestamp is None else timestamp,
                                dict(attributes or {})))

    def update_name(self, name: str) -> None:
        self.name = name

    def set_status(self, status, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if code is StatusCode.ERROR:
            self.status = "error"
            self.status_text = (status.description if isinstance(status, Status)
                                else description) or ""
        elif code is StatusCode.OK:
            self.status, self.status_text = "ok", ""

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False):
        self.add_event("exception", {"exception.type": type(exception).__name__,
                                     "exception.message": str(exception), **(attributes or {})},
                       timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns is None:
            self.end_ns = now_ns() if end_time is None else end_time
            self._tracer._ended(self)

    def record(self) -> SpanRecord:
        """This (ended) span as a SpanRecord (made once)."""
        if self._record is None:
            c, p = self._context, self.parent
            self._record = SpanRecord(
                trace_id=f"{c.trace_id:032x}", span_id=f"{c.span_id:016x}",
                parent_id=f"{p.span_id:016x}" if p is not None else None, name=self.name,
                service=str(self.attributes.get("service.name", "labkit")), kind=self.kind,
                start_s=self.start_ns / 1e9, end_s=self.end_ns / 1e9, status=self.status,
                attributes=self.attributes,
                events=tuple((n, t / 1e9, a) for n, t, a in self.events))
        return self._record

    def readable(self, resource) -> ReadableSpan:
        """This (ended) span as the SDK's ReadableSpan, for SDK processors and exporters."""
        status = (Status(StatusCode.ERROR, self.status_text) if self.status == "error"
                  else Status(StatusCode.UNSET))
        return ReadableSpan(
            name=self.name, context=self._context, parent=self.parent, resource=resource,
            attributes=dict(self.attributes), kind=KINDS[self.kind], status=status,
            events=[Event(n, a, t) for n, t, a in self.events], start_time=self.start_ns,
            end_time=self.end_ns, instrumentation_scope=_SCOPE)


class Tracer:
    """Seeded ids, a bounded in-memory store of spans, and an SDK TracerProvider whose span
    processors also receive every labkit span.

    `processors` are SDK span processors (e.g. a BatchSpanProcessor with an exporter, or
    SimpleSpanProcessor(InMemorySpanExporter())); `otlp=None` adds an OTLP exporter when
    OTEL_EXPORTER_OTLP_ENDPOINT is set. Spans made with `provider.get_tracer(...)` (plain SDK
    spans) reach those processors, with labkit's ids, but not labkit's store."""

    def __init__(self, *, name: str = "tracing", max_spans: int = 20_000,
                 seed: int | None = None, processors: tuple = (), otlp: bool | None = None):
        self.max_spans = validate.integer("max_spans", max_spans, 1, 10_000_000)
        self.store: deque = deque(maxlen=self.max_spans)
        self.ids = SeededIds(seed, name)
        self.pipeline = SynchronousMultiSpanProcessor()
        self.provider = TracerProvider(id_generator=self.ids, active_span_processor=self.pipeline,
                                       resource=Resource.create({"service.name": "labkit"}))
        for p in processors:
            self.provider.add_span_processor(p)
        self.otlp = False                  # True once spans also go to an OTLP collector
        if otlp or (otlp is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
            self.otlp = _attach_otlp(self.provider)
        self._exporting = bool(processors) or self.otlp
        self.enabled = True

    def start(self, name: str, *, service: str, kind: str = "internal", parent=None,
              attributes: dict | None = None) -> Span:
        """A started span (not made current); end it with `span.end()`.

        parent: None = the current span (if any); ROOT = start a new trace; an OTel Context
        (e.g. from `extract`). A child keeps its parent's trace id, flags and tracestate."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        up = otel_trace.get_current_span(parent).get_span_context()
        if up.is_valid:
            context = SpanContext(up.trace_id, self.ids.generate_span_id(), False,
                                  up.trace_flags, up.trace_state)
        else:
            up = None
            context = SpanContext(self.ids.generate_trace_id(), self.ids.generate_span_id(),
                                  False, _SAMPLED)
        attrs = {"service.name": service}
        if attributes:
            attrs.update(attributes)
        return Span(self, name, context, up, kind, attrs, now_ns())

    def _ended(self, s: Span) -> None:
        self.store.append(s)
        if self._exporting:
            self.pipeline.on_end(s.readable(self.provider.resource))

    def span(self, name: str, *, service: str, kind: str = "internal", parent=None,
             attributes: dict | None = None) -> "_Current":
        """``with tracer.span(...) as s:`` runs the block inside a new current span `s`; an
        exception marks it "error". When tracing is off, `s` is OTel's no-op span."""
        return _Current(self, name, service, kind, parent, attributes)

    def finished_spans(self, trace_id: str | None = None) -> list[SpanRecord]:
        spans = list(self.store)
        if trace_id is not None:
            if not isinstance(trace_id, str) or not tp.is_trace_id(trace_id):
                raise ValueError(f"trace_id must be 32 lowercase hex digits (a SpanRecord's "
                                 f"trace_id), got {trace_id!r}")
            spans = [s for s in spans if s._context.trace_id == int(trace_id, 16)]
        return [s.record() for s in spans]

    def clear(self) -> None:
        self.store.clear()


class _Current:
    """The context manager of `Tracer.span` and `outgoing` (a class: cheaper than a
    generator); with `headers`, the new span's traceparent is injected into them."""
    __slots__ = ("args", "headers", "span", "token")

    def __init__(self, tracer, name, service, kind, parent, attributes, headers=None):
        self.args = (tracer, name, service, kind, parent, attributes)
        self.headers = headers

    def __enter__(self):
        tracer, name, service, kind, parent, attributes = self.args
        if not tracer.enabled:
            self.span = None
            return otel_trace.INVALID_SPAN
        self.span = tracer.start(name, service=service, kind=kind, parent=parent,
                                 attributes=attributes)
        self.token = attach(self.span)
        if self.headers is not None:
            inject(self.headers)
        return self.span

    def __exit__(self, exc_type, exc, tb):
        if self.span is not None:
            if exc is not None:
                error(self.span, exc)
            detach(self.token)
            self.span.end()
        return False


def _attach_otlp(provider) -> bool:
    """Also send spans to $OTEL_EXPORTER_OTLP_ENDPOINT (the optional extra
    opentelemetry-exporter-otlp-proto-http), shifted to wall-clock times; one sentence and
    False when the exporter is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        print("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http "
              "is not installed (in the course folder: .venv/bin/pip install -e '.[otlp]'): "
              "spans stay in labkit's in-memory store only.")
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    provider.add_span_processor(BatchSpanProcessor(WallClockExporter(OTLPSpanExporter())))
    return True


class WallClockExporter(SpanExporter):
    """Wraps an exporter, moving span and event times from the span clock (monotonic or
    virtual seconds) to Unix-epoch nanoseconds, as collectors expect."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.offset_ns = time.time_ns() - now_ns()

    def _shift(self, s):
        off = self.offset_ns
        return ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=s.resource,
            attributes=s.attributes, links=s.links, kind=s.kind, status=s.status,
            events=[Event(e.name, e.attributes, e.timestamp + off) for e in s.events],
            start_time=s.start_time + off, end_time=s.end_time + off,
            instrumentation_scope=s.instrumentation_scope)

    def export(self, spans):
        return self.inner.export([self._shift(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def attach(s) -> object:
    """Make span `s` the current one (in this task's context); returns the token for `detach`."""
    return otel_context.attach(otel_trace.set_span_in_context(s))


def detach(token) -> None:
    otel_context.detach(token)


def error(s, err: BaseException | str) -> None:
    """Mark span `s` failed, naming the error (an exception or a short text such as "HTTP 503")."""
    what = err if isinstance(err, str) else type(err).__name__
    s.set_status(Status(StatusCode.ERROR, what))
    s.set_attribute("error.type", what)


_default: Tracer | None = None
_default_lock = threading.Lock()


def default() -> Tracer:
    """The process's tracer, made on first use (every labkit instrumentation uses it)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Tracer()
    return _default


def set_default(tracer: Tracer) -> Tracer:
    """Make `tracer` the process's tracer (e.g. one with an exporter); returns the old one.
    Every later span uses it, in services already running too."""
    global _default
    if not isinstance(tracer, Tracer):
        raise ValueError(f"tracer must be a labkit.obs.tracing.Tracer, got {tracer!r}")
    old = default()
    with _default_lock:
        _default = tracer
    return old


def span(name: str, *, service: str, kind: str = "internal", parent=None,
         attributes: dict | None = None):
    """`default().span(...)`: ``with tracing.span("checkout", service="orders"): ...``."""
    return default().span(name, service=service, kind=kind, parent=parent, attributes=attributes)


def finished_spans(trace_id: str | None = None) -> list[SpanRecord]:
    """Finished spans of `trace_id` (all when None), oldest first; the store keeps the newest."""
    return default().finished_spans(trace_id)


def clear() -> None:
    """Forget the finished spans."""
    default().clear()


def reset() -> None:
    """Forget the finished spans and restart the id stream from the course seed."""
    default().clear()
    default().ids.restart()


def enable(on: bool = True) -> None:
    """Switch labkit's automatic spans on (default) or off."""
    default().enabled = validate.boolean("on", on)


def add_event(name: str, **attributes) -> None:
    """Add an event (on the span clock) to the current span; nothing when there is none."""
    s = otel_trace.get_current_span()
    if s.is_recording():
        s.add_event(name, attributes, timestamp=now_ns())


def calling_service(default_name: str = "client") -> str:
    """The service of the current span (whose code is making a call), else `default_name`."""
    attrs = getattr(otel_trace.get_current_span(), "attributes", None)
    return str(attrs.get("service.name", default_name)) if attrs else default_name


def outgoing(name: str, headers: dict, *, kind: str = "client", service: str | None = None,
             attributes: dict | None = None) -> "_Current":
    """``with outgoing(...) as s:`` a client (or producer) span around one outgoing call, its
    `traceparent` injected into `headers`, so the receiver's span becomes its child."""
    return _Current(default(), name, service or calling_service(), kind, None, attributes,
                    headers)


def http_status(s, status: int, *, server: bool) -> None:
    """Record an HTTP status on span `s`: 5xx is an error; 4xx too on the client side (OTel's
    HTTP conventions: a 404 is the server doing its job, but the caller's call failed)."""
    if not s.is_recording():
        return
    s.set_attribute("http.response.status_code", status)
    if status >= 500 or (not server and status >= 400):
        error(s, f"HTTP {status}")


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span as hex, or None outside any span."""
    c = otel_trace.get_current_span().get_span_context()
    return (f"{c.trace_id:032x}", f"{c.span_id:016x}") if c.is_valid else None


def inject(headers: dict) -> dict:
    """Add `traceparent` (and `tracestate` if any) for the current span to `headers`; returns
    it. Nothing is added outside a span: a missing header is how "no parent" is said (the
    tutorial sent the text "None")."""
    c = otel_trace.get_current_span().get_span_context()
    if c.is_valid:                      # valid ids: non-zero, so the header is valid W3C
        headers["traceparent"] = f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"
        if c.trace_state:
            headers["tracestate"] = c.trace_state.to_header()      # checked when received
    return headers


def _header(headers, name: str):
    """Header `name` of a mapping: case-insensitive ones (aiohttp's) directly, a plain dict
    (gRPC metadata, message headers) by any spelling of the name."""
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def extract(headers) -> "otel_context.Context | None":
    """The remote parent carried by `headers` (a mapping) as an OTel Context, or None when
    `traceparent` is missing or invalid: then the receiver starts a new trace (W3C)."""
    from opentelemetry.trace.span import TraceState
    raw = _header(headers, "traceparent")
    if raw is None:
        return None
    parent = tp.parse_traceparent(raw)
    if parent is None:
        return None
    members = tp.parse_tracestate(_header(headers, "tracestate"))
    ctx = SpanContext(trace_id=int(parent.trace_id, 16), span_id=int(parent.parent_id, 16),
                      is_remote=True, trace_flags=TraceFlags(parent.flags),
                      trace_state=TraceState(members) if members else None)
    return otel_trace.set_span_in_context(NonRecordingSpan(ctx), ROOT)
