"""One checkout across four real services and the broker, traced end to end (chapter 07).

The parcel's journey: a client posts ``POST /checkout`` to **orders**, which reserves stock at
**inventory** (``POST /reserve``), charges at **payments** (``POST /charge``), answers, and
announces ``order.placed`` through the broker to **notifications**, whose consumer stores the
message with ``POST /notifications`` on its own service. Every hop is a real labkit service on
127.0.0.1 (the calls go through labkit's AsyncClient, the broker is `labkit.broker()`'s
embedded one), and every span comes from labkit's automatic instrumentation: nothing in the
handlers below mentions tracing.

    spans = await trace_demo(faults={"payments": {"latency_ms": 300}})   # make one hop slow

returns the trace's `SpanRecord`s (labkit.obs.tracing), oldest start first, for the waterfall
chart and the critical path; `format_tree(spans)` prints them as an indented tree, with the
span events (chapter 05's retries, breaker changes, deadlines) under their spans. Faults
are set for the run and restored after it.

Orders charges through chapter 05's `Retry` (3 attempts, short full-jitter waits, the order
id as idempotency key, so a repeated POST /charge is safe); `flaky_payments=1` makes payments
answer 503 to the first charge of the run, and the retry shows as a ``retry.retry`` event on
orders' server span between the two ``POST /charge`` attempts. `grpc_demo()` sends one order
through labkit's gRPC shop (orders -> inventory over gRPC) for the same kind of tree.
"""
from __future__ import annotations

import asyncio
import itertools
import json

from aiohttp import web

import labkit
from labkit._core import runtime, validate
from labkit.messaging import Message
from labkit.messaging import tracing as mtracing
from labkit.obs import tracing
from labkit.patterns.backoff import FullJitter
from labkit.patterns.errors import ServiceError, parse_retry_after
from labkit.patterns.retry import Retry
from labkit.services.clients import AsyncClient
from labkit.services.http import ServiceSpec, start_service

__all__ = ["DEFAULT_WORK_MS", "HOPS", "format_tree", "grpc_demo", "trace_demo"]

HOPS = ("orders", "inventory", "payments", "notifications")
DEFAULT_WORK_MS = {"orders": 5.0, "inventory": 10.0, "payments": 20.0, "notifications": 5.0}
QUEUE = "notifications"
_setups: dict = {}                 # loop -> _Setup (rebuilt after labkit.shutdown())


def _json(status: int, body) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class _Setup:
    """The four services, their clients and the broker consumer of one event loop."""

    def __init__(self):
        self.work_ms = dict(DEFAULT_WORK_MS)
        self.fail_charges = 0                      # payments answers 503 to this many charges
        self.services: dict = {}
        self.clients: dict = {}
        self.done: dict[str, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.channel = None

    def alive(self) -> bool:
        return all(s.running for s in self.services.values()) and self.channel is not None \
            and not self.channel.is_closed

    async def work(self, name: str) -> None:
        """The hop's own work (a database call, say), before it calls anyone."""
        await asyncio.sleep(self.work_ms[name] / 1000)

    async def checkout(self, service, request):
        order = await request.json()
        await self.work("orders")
        stock = await self.clients["inventory"].post("/reserve", json=order)
        if not stock.ok:
            return _json(502, {"error": f"inventory answered {stock.status}"})

        async def charge():
            paid = await self.clients["payments"].post("/charge", json=order)
            if not paid.ok:
                raise ServiceError.from_status(
                    paid.status, f"payments answered {paid.status}",
                    retry_after_s=parse_retry_after(paid.headers.get("Retry-After")))
        retry = Retry(max_attempts=3, max_total_s=10.0, backoff=FullJitter(base=0.01, cap=0.1),
                      method="POST", idempotency_key=order["order_id"], name="orders->payments")
        try:
            await retry.call(charge)
        except ServiceError as err:
            return _json(502, {"error": str(err)})
        await self.channel.default_exchange.publish(
            Message(json.dumps(order).encode(), message_id=order["order_id"]), routing_key=QUEUE)
        return _json(201, {"order_id": order["order_id"], "status": "placed"})

    async def reserve(self, service, request):
        await self.work("inventory")
        return _json(200, {"reserved": True})

    async def charge(self, service, request):
        if self.fail_charges > 0:
            self.fail_charges -= 1
            return _json(503, {"error": "payments is flaky (trace_demo's flaky_payments)"})
        await self.work("payments")
        return _json(200, {"charged": True})

    async def notify(self, message) -> None:
        """The notifications consumer: store the message on the notifications service."""
        order = json.loads(message.body)
        try:
            await self.work("notifications")
            await self.clients["notifications"].post(
                "/notifications", json={"to": f"user-{order['user_id']}",
                                        "message": f"order {order['order_id']} placed"})
            await message.ack()
        finally:
            waiter = self.done.get(order["order_id"])
            if waiter is not None and not waiter.done():
                waiter.set_result(True)


async def _start(name: str, routes: tuple):
    """Start `name` with `routes`; a same-named service without them is replaced."""
    running = runtime.services().get(name)
    if running is not None and running.spec.routes != routes:
        await running.stop()
    spec = labkit.SPECS[name]
    return await start_service(ServiceSpec(name, spec.fields, spec.collection, spec.unique,
                                           routes=routes))


async def _setup() -> _Setup:
    loop = asyncio.get_running_loop()
    s = _setups.get(loop)
    if s is not None and s.alive():
        return s
    s = _setups[loop] = _Setup()
    routes = {"orders": (("POST", "/checkout", s.checkout),),
              "inventory": (("POST", "/reserve", s.reserve),),
              "payments": (("POST", "/charge", s.charge),), "notifications": ()}
    for name in HOPS:
        s.services[name] = await _start(name, routes[name])
        s.clients[name] = AsyncClient(s.services[name].url, timeout_s=30)
    conn = await labkit.broker()
    s.channel = await conn.channel()
    queue = await s.channel.declare_queue(QUEUE)
    mtracing.name_consumer(QUEUE, "notifications")
    await queue.consume(s.notify)
    return s


async def trace_demo(*, faults: dict | None = None, work_ms: dict | None = None,
                     flaky_payments: int = 0, timeout_s: float = 30.0) -> list:
    """Run one checkout through orders → inventory → payments → (broker) → notifications and
    return its trace's SpanRecords, sorted by start.

    faults: {service name: {knob: value}} set for this run only (e.g. {"payments":
    {"latency_ms": 300}} makes payments slow); work_ms: each hop's own work in ms (defaults
    `DEFAULT_WORK_MS`); flaky_payments: payments answers 503 to this many charges first (0-3;
    orders retries up to 3 attempts); timeout_s bounds the whole run."""
    timeout_s = validate.number("timeout_s", timeout_s, 0, 300, lo_open=True, unit=" seconds")
    flaky_payments = validate.integer("flaky_payments", flaky_payments, 0, 3)
    faults = dict(faults or {})
    work_ms = dict(work_ms or {})
    for name in (*faults, *work_ms):
        if name not in HOPS:
            raise ValueError(f"faults/work_ms keys must be among {HOPS}, got {name!r}")
    for name, ms in work_ms.items():
        validate.number(f"work_ms[{name!r}]", ms, 0, 10_000, unit=" ms")
    s = await _setup()
    saved = {name: s.services[name].faults.summary() for name in faults}
    s.work_ms = {**DEFAULT_WORK_MS, **work_ms}
    s.fail_charges = flaky_payments
    order_id = f"o-{next(s.ids)}"
    done = s.done[order_id] = asyncio.get_running_loop().create_future()
    try:
        for name, knobs in faults.items():
            s.services[name].faults.set(**knobs)
        with tracing.span("checkout", service="client") as root:
            trace_id = f"{root.get_span_context().trace_id:032x}"
            reply = await s.clients["orders"].post(
                "/checkout", json={"order_id": order_id, "user_id": 7, "sku": "tea",
                                   "quantity": 1}, timeout_s=timeout_s)
        if reply.ok:
            await asyncio.wait_for(done, timeout_s)
            await _consumer_span(trace_id, timeout_s=2.0)
    finally:
        s.done.pop(order_id, None)
        for name, knobs in saved.items():
            s.services[name].faults.set(**knobs)
        s.work_ms = dict(DEFAULT_WORK_MS)
        s.fail_charges = 0
    return sorted(tracing.finished_spans(trace_id), key=lambda r: r.start_s)


def format_tree(spans) -> str:
    """The spans of one trace as an indented tree, children under parents, in start order:
    offset and duration in ms from the earliest start, service, kind, name, status. A span's
    events (``* retry.retry attempt=1 ... (on orders: server POST /checkout)``) sit among its
    children in time order, each naming the span it belongs to (children may come between)."""
    spans = sorted(spans, key=lambda r: r.start_s)
    if not spans:
        return "(no spans)"
    ids = {r.span_id for r in spans}
    children: dict = {}
    for r in spans:
        children.setdefault(r.parent_id if r.parent_id in ids else None, []).append(r)
    t0, lines = spans[0].start_s, []

    def emit(r, depth):
        lines.append(f"{1000 * (r.start_s - t0):8.1f} ms {1000 * r.duration_s:8.1f} ms  "
                     f"{'  ' * depth}{r.service}: {r.kind} {r.name}"
                     f"{'  [error]' if r.status == 'error' else ''}")
        below = [(c.start_s, 1, i, c) for i, c in enumerate(children.get(r.span_id, ()))]
        events = [(t_s, 0, i, (name, attrs)) for i, (name, t_s, attrs) in enumerate(r.events)]
        for t_s, is_span, _, item in sorted(below + events, key=lambda x: x[:3]):
            if is_span:
                emit(item, depth + 1)
            else:
                _event(lines, t_s - t0, depth, *item, on=f"{r.service}: {r.kind} {r.name}")
    for root in children.get(None, ()):
        emit(root, 0)
    return "   start    duration  span\n" + "\n".join(lines)


_EVENT_KEYS = ("attempt", "wait_s", "cause", "old", "new", "where")


def _event(lines: list, offset_s: float, depth: int, name: str, attrs: dict, *, on: str) -> None:
    """One span event as a tree line: offset, `*`, name, the attributes that explain it and
    the span it is on (`on`)."""
    said = " ".join(f"{k}={_short(attrs[k])}" for k in _EVENT_KEYS
                    if k in attrs and attrs[k] not in (0.0, "ok"))
    lines.append(f"{1000 * offset_s:8.1f} ms {'':11}{'  ' * depth}  * {name}"
                 f"{'  ' + said if said else ''}  (on {on})")


def _short(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)[:40]


async def grpc_demo(*, timeout_s: float = 10.0) -> list:
    """One order over gRPC: a "checkout" span in the notebook calls PlaceOrder on labkit's gRPC
    shop "orders", which checks the stock with GetItem on the gRPC shop "inventory" (started
    here, or the ones already running). Returns that trace's SpanRecords, sorted by start:
    the traceparent travels in the gRPC metadata as it does in HTTP headers."""
    from labkit.protocols.grpc_service import ShopClient, start_grpc_service
    timeout_s = validate.number("timeout_s", timeout_s, 0, 300, lo_open=True, unit=" seconds")
    inventory = await start_grpc_service("inventory")
    orders = await start_grpc_service("orders", downstream=inventory.target)
    if inventory.items.get("tea", 0) < 1:
        async with ShopClient(inventory, timeout_s=timeout_s) as c:
            [_ async for _ in c.update_stock([("tea", 5)])]
    async with ShopClient(orders, timeout_s=timeout_s) as c:
        with tracing.span("checkout", service="client") as root:
            trace_id = f"{root.get_span_context().trace_id:032x}"
            await c.place_order(7, "tea", 1)
    # a server span ends just after its answer has been sent: wait for the last one
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end and sum(r.kind == "server"
                                    for r in tracing.finished_spans(trace_id)) < 2:
        await asyncio.sleep(0.001)
    return sorted(tracing.finished_spans(trace_id), key=lambda r: r.start_s)


async def _consumer_span(trace_id: str, *, timeout_s: float) -> None:
    """Wait (at most `timeout_s`) until the consumer span has ended: it ends just after the
    handler that resolved our future returns."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        if any(r.kind == "consumer" for r in tracing.finished_spans(trace_id)):
            return
        await asyncio.sleep(0.001)
