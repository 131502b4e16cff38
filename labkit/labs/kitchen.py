"""The live kitchen: order tickets on the rail, cooks taking them, while you turn the knobs.

Chapter 02. A producer publishes orders ("order-N", persistent) at `rate_per_s` to a durable
queue; `consumers` cooks, each on its own connection with a `prefetch` window, work on them
(`labkit.messaging.consumers`: ack after the work, optionally idempotent). With `dead_letter`
the queue is a quorum queue with a delivery limit and a dead-letter exchange + queue
(`<queue>.dlx`, `<queue>.dlq`), so a message that keeps crashing its consumer ends up there.

    kitchen = await Kitchen.start(crash_rate=0.2)
    kitchen.set(consumers=1, idempotent=True)    # live; re-opened consumers return in-flight
    kitchen.stats()                              # ready, unacked, rates over the last 2 s
    await kitchen.drain(timeout_s=10); kitchen.verdict()["verdict"]     # "OK: ..."
    await kitchen.stop()                         # or labkit.shutdown()

A cook cooks one dish at a time: each consumer's handler runs its orders one after another
(the prefetch window is the tickets in its hand, not dishes on the stove), so the kitchen's
capacity is consumers / processing time, whatever the prefetch. Processing time is a sleep in
the handler, drawn per dish from the kitchen's seeded rng (`processing_dist`: "fixed",
"exponential" or "long_tail", mean `processing_ms`; the cooks live in `kitchen_cooks`).
`publish_latency_ms` delays each publish (the producer waits for each confirm, so above
1000/rate_per_s ms it cannot keep its rate). On the embedded broker the fault model
(`labkit.messaging.BrokerFaults`) supplies the crashes and the publish latency, and
`restart_broker()` / `cut_off(i)` work. On RabbitMQ a crash is simulated (the consumer nacks
with requeue instead of acking, after the work), the publish latency is a sleep in the
producer, restart and cut-off raise ValueError; consumers are channels of the one connection;
dead letters are seen by a small consumer of the dead-letter queue (RabbitMQ does not tell
clients). Times come from the running loop (real time here, not labkit.sim); rates and
duplicates are counted by `labkit.obs.rates`.
"""
from __future__ import annotations

import asyncio

from labkit import messaging
from labkit._core import runtime, seeding, validate
from labkit.labs.kitchen_cooks import MAX_CONSUMERS, PROCESSING_DISTS, RECONNECT_S, Cooks
from labkit.messaging.api import AMQPError, Message
from labkit.messaging.consumers import SeenStore, ack_after, idempotent as idempotent_handler
from labkit.messaging.faults import BrokerFaults
from labkit.obs.rates import DuplicateCounter, WindowedRates

__all__ = ["Kitchen", "KNOBS", "DELIVERY_LIMIT"]

KNOBS = ("rate_per_s", "consumers", "prefetch", "processing_ms", "crash_rate", "idempotent",
         "processing_dist", "publish_latency_ms")
DELIVERY_LIMIT = 5          # deliveries before a quorum queue dead-letters a message
RATE_WINDOW_S = 2.0         # rates in stats() cover the last 2 s
MAX_LISTENERS = 16
MAX_MESSAGES = 200_000      # ids the checker tracks (beyond: its verdict says INCOMPLETE)
_RATED = ("published", "delivered", "acked", "redelivered", "dead_lettered")
_kitchens: dict = {}        # queue name -> the running Kitchen (a re-run cell replaces it)


_LIMITS = {"rate_per_s": (0, 1000, " orders/s"), "consumers": (0, MAX_CONSUMERS, ""),
           "prefetch": (1, 1000, ""), "processing_ms": (0, 60_000, " ms"),
           "crash_rate": (0, 1, ""), "publish_latency_ms": (0, 1000, " ms")}


def _check(knob: str, value):
    """One knob's value, checked (ValueError naming it)."""
    if knob == "idempotent":
        return validate.boolean("idempotent", value)
    if knob == "processing_dist":
        return validate.choice("processing_dist", value, PROCESSING_DISTS)
    if knob not in _LIMITS:
        raise ValueError(f"{knob} is not a kitchen knob; the knobs are {list(KNOBS)}")
    lo, hi, unit = _LIMITS[knob]
    if knob in ("consumers", "prefetch"):
        return validate.integer(knob, value, lo, hi)
    return validate.number(knob, value, lo, hi, unit=unit)


class Kitchen(Cooks):
    """A running producer/consumer pipeline with live knobs; build it with `Kitchen.start`."""

    def __init__(self, conn, *, queue, knobs, dead_letter, seed, owns_conn, duration_s):
        self.conn, self.queue, self.dead_letter = conn, queue, dead_letter
        self.embedded = getattr(conn, "backend", "") == "embedded"
        self.broker = conn.broker if self.embedded else None
        self.journal = conn.journal
        self.start_knobs, self.knobs = dict(knobs), dict(knobs)
        self.duration_s, self.loop = duration_s, asyncio.get_running_loop()
        self.seen = SeenStore(100_000)      # the idempotent consumer's ids (bounded)
        self.checker = messaging.DeliveryChecker(max_messages=MAX_MESSAGES)
        self.published = self.publish_failures = self.crashes = self.settle_failures = 0
        self.reopens = self._in_flight = self._ready = 0
        self.last_error, self.running, self._owns_conn = "", False, owns_conn
        self._rates = WindowedRates(_RATED, window_s=RATE_WINDOW_S, max_events=20_000)
        self._handled = DuplicateCounter(max_ids=MAX_MESSAGES)   # "handled" ids, for duplicates
        self._listeners, self._tasks = [], []
        self._reopen = self._paused = self._made_faults = False  # paused: drain() stopped it
        self._drained = None            # None: no drain yet; else whether it completed
        self._wake = asyncio.Event()
        self._unsubscribe = self._unregister = None
        self._rng = (seeding.stream("kitchen") if seed is None else seeding.rng("kitchen", seed))
        self.faults = None
        if self.embedded:
            self.faults = self.broker.faults
            if self.faults is None:
                self.faults = BrokerFaults(self.broker, seed=seed)
                self._made_faults = True
            f = self.faults             # a shared broker's knobs come back at stop()
            self._faults_before = dict(crash_rate=f.crash_rate, processing_s=f.processing,
                                       publish_latency_ms=f.publish_latency_ms)
            self.faults.configure(crash_rate=knobs["crash_rate"], processing_s=0.0,
                                  publish_latency_ms=knobs["publish_latency_ms"])
        self._init_cooks()              # consumers, and the seeded draw of cooking times
        journal = self.journal
        self._plain = ack_after(self._work, retries=1, journal=journal)
        self._idem = idempotent_handler(self._work, store=self.seen, retries=1, journal=journal)

    # ---- starting -----------------------------------------------------------------------
    @classmethod
    async def start(cls, conn=None, *, queue: str = "tickets", rate_per_s: float = 20.0,
                    consumers: int = 3, prefetch: int = 10, processing_ms: float = 50.0,
                    crash_rate: float = 0.0, idempotent: bool = False,
                    processing_dist: str = "fixed", publish_latency_ms: float = 0.0,
                    dead_letter: bool = True, seed: int | None = None,
                    duration_s: float = 1800.0) -> "Kitchen":
        """Declare the queues and start the producer and the consumers (see the module doc).

        `conn`: a labkit.messaging connection (default: `labkit.broker()`, or a new embedded
        one). The kitchen stops by itself after `duration_s` (bounded). A kitchen already
        running on the same queue (a re-run cell) is stopped first."""
        knobs = {k: _check(k, v) for k, v in zip(KNOBS, (
            rate_per_s, consumers, prefetch, processing_ms, crash_rate, idempotent,
            processing_dist, publish_latency_ms))}
        validate.text("queue", queue)
        if not queue:
            raise ValueError("queue must be a non-empty name, got ''")
        dead_letter = validate.boolean("dead_letter", dead_letter)
        if seed is not None:
            validate.integer("seed", seed)
        duration_s = validate.number("duration_s", duration_s, 0, 86_400, lo_open=True, unit=" s")
        previous = _kitchens.get(queue)
        if (previous is not None and previous.running
                and previous.loop is asyncio.get_running_loop()):
            await previous.stop()
        owns = conn is None
        if conn is None:
            conn, owns = await _default_connection()
        elif not callable(getattr(conn, "channel", None)) or not hasattr(conn, "journal"):
            raise ValueError(f"conn must be a labkit.messaging connection or None, got {conn!r}")
        kitchen = cls(conn, queue=queue, knobs=knobs, dead_letter=dead_letter, seed=seed,
                      owns_conn=owns, duration_s=duration_s)
        await kitchen._declare(DELIVERY_LIMIT)
        kitchen._begin()
        _kitchens[queue] = kitchen
        return kitchen

    def _begin(self) -> None:
        self.running = True
        self._t0 = self.loop.time()
        self._unsubscribe = self.journal.subscribe(self._observe)
        self._unregister = runtime.on_shutdown(self.stop, loop=self.loop)
        self._tasks = [runtime.spawn(self._produce(), name=f"kitchen-{self.queue}-producer"),
                       runtime.spawn(self._supervise(), name=f"kitchen-{self.queue}-consumers")]

    # ---- knobs --------------------------------------------------------------------------
    def set(self, **changes) -> dict:
        """Change knobs live (see KNOBS); returns the knobs that changed. More consumers join
        beside the others; fewer: the last ones leave and their unacked messages come back
        redelivered; a new prefetch re-opens every consumer (their messages come back too)."""
        checked = {k: _check(k, v) for k, v in changes.items()}
        changed = {k: v for k, v in checked.items() if self.knobs[k] != v}
        self.knobs.update(changed)
        if self.faults is not None and ("crash_rate" in changed or
                                        "publish_latency_ms" in changed):
            self.faults.configure(crash_rate=self.knobs["crash_rate"], processing_s=0.0,
                                  publish_latency_ms=self.knobs["publish_latency_ms"])
        if "processing_ms" in changed or "processing_dist" in changed:
            self._new_sampler()
        if "prefetch" in changed:             # a new window: the cooks start over
            self._reopen = True
        if "prefetch" in changed or "consumers" in changed:
            self._wake.set()                  # more cooks join; fewer: the last ones leave
        for fn in list(self._listeners):
            if changed:
                fn(dict(changed))
        return changed

    def reset(self) -> dict:
        """Back to the values the kitchen started with."""
        return self.set(**self.start_knobs)

    def on_change(self, fn) -> callable:
        """Call `fn(changed_knobs)` after each change; returns `unsubscribe()` (bounded)."""
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {fn!r}")
        if len(self._listeners) >= MAX_LISTENERS:
            raise ValueError(f"a kitchen takes at most {MAX_LISTENERS} listeners; unsubscribe "
                             "old ones (on_change returns the function that does it)")
        entry = lambda changed: fn(changed)  # noqa: E731 - its own identity per subscription
        self._listeners.append(entry)
        return lambda: entry in self._listeners and self._listeners.remove(entry)

    # ---- faults -------------------------------------------------------------------------
    def _need_embedded(self, what: str) -> None:
        if not self.embedded:
            raise ValueError(f"{what} needs the embedded broker (labkit.messaging.connect()); "
                             "on RabbitMQ restart it or block a consumer outside labkit")

    def restart_broker(self) -> None:
        """The broker restarts: connections drop, non-persistent messages are lost; the
        kitchen's durable queues and persistent orders survive and its clients reconnect."""
        self._need_embedded("restart_broker()")
        self.faults.restart()
        self._wake.set()

    def cut_off(self, i: int = 1) -> None:
        """The broker loses consumer number `i` (1..consumers, as on the panel); its unacked
        orders go to the others, it reconnects after RECONNECT_S."""
        self._need_embedded("cut_off()")
        numbers = sorted(s.number for s in self._slots if not s.closed)
        i = validate.integer("i", i, 1, MAX_CONSUMERS)
        slot = next((s for s in self._slots if s.number == i and not s.closed), None)
        if slot is None:
            raise ValueError(f"i must be the number of a connected consumer {numbers}, got {i}")
        self.faults.cut_off(slot.conn)
        self._wake.set()

    async def _produce(self) -> None:
        ch = ex = conn = None
        next_t = self.loop.time()
        # `running` too: on Python 3.11 wait_for may swallow stop()'s cancel (gh-86296)
        while self.running and self.loop.time() < self._t0 + self.duration_s:
            rate, now = self.knobs["rate_per_s"], self.loop.time()
            if rate <= 0 or self._paused:
                next_t = now
                await asyncio.sleep(0.05)
                continue
            if next_t > now:
                await asyncio.sleep(min(next_t - now, 0.05))
                continue
            next_t = max(next_t, now - 1.0)         # fell behind: catch up at most 1 s
            try:
                if ch is None or ch.is_closed:
                    if self.embedded and conn is not None:
                        await conn.close()
                    conn = await self._connection()
                    ch = await conn.channel()
                    ex = await ch.declare_exchange(self.exchange_name, "direct", durable=True)
                latency_ms = self.knobs["publish_latency_ms"]
                if not self.embedded and latency_ms > 0:   # embedded: BrokerFaults delays it
                    await asyncio.sleep(latency_ms / 1000.0)
                mid = f"order-{self.published + 1}"
                await ex.publish(Message(f'{{"order": "{mid}"}}', message_id=mid,
                                         persistent=True), routing_key="order", timeout_s=5.0)
                self.published += 1
            except (AMQPError, ConnectionError, asyncio.TimeoutError) as e:
                self.publish_failures += 1
                self.last_error = f"producer: {type(e).__name__}: {e}"[:200]
                ch = None
                await asyncio.sleep(RECONNECT_S)
                continue
            next_t += 1.0 / rate
        if self.embedded and conn is not None:
            await conn.close()
        if self.running:
            runtime.spawn(self.stop())              # duration_s is over: stop everything

    # ---- measuring ----------------------------------------------------------------------
    def _observe(self, e) -> None:
        mine = (e.queue == self.exchange_name if e.kind in ("published", "confirmed", "returned",
                                                            "unroutable")
                else e.queue == self.queue_name)
        if not mine:
            return
        self.checker.observe(e)
        self._rates.record(e.kind, e.t)
        if e.kind == "delivered" and e.redelivered:
            self._rates.record("redelivered", e.t)
        if e.kind == "handled":
            self._handled.add(e.message_id)

    @property
    def duplicates(self) -> int:
        """Deliveries whose work was done again for an id already handled."""
        return self._handled.duplicates

    def stats(self) -> dict:
        """Queue depth, unacked, consumers, rates per second over the last 2 s, totals."""
        if self.embedded and self.queue_name in self.broker.queues:
            info = self.broker.queue_info(self.queue_name)
            ready, unacked = info["ready"], info["unacked"]
        else:
            ready, unacked = self._ready, self._in_flight
        out = self._rates.summary(now_s=self.loop.time())
        return {"ready": ready, "unacked": unacked,
                "consumers": sum(1 for s in self._slots if not s.closed), **out,
                "duplicates": self.duplicates, "crashes": self.crashes, "running": self.running}

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Stop the producer and wait (at most `timeout_s`) until the queue is empty and no
        message is unacked; True if it drained. Then `verdict()` tells what happened."""
        timeout_s = validate.number("timeout_s", timeout_s, 0, 3600, lo_open=True, unit=" s")
        self._paused = True
        end = self.loop.time() + timeout_s
        drained = False
        while self.loop.time() < end and self.running:
            s = self.stats()
            if s["ready"] == 0 and s["unacked"] == 0 and self._in_flight == 0 and \
                    (self.embedded or not self.checker.lost_ids()):
                drained = True
                break
            await asyncio.sleep(0.05)
        self._drained = drained
        return drained

    def resume(self) -> None:
        """Start publishing again after a drain."""
        self._paused = False

    def verdict(self, *, allow_duplicates: bool = True) -> dict:
        """The delivery checker's result (after `drain`): counts, lost and duplicate ids."""
        if self._drained is None:
            raise RuntimeError("call `await kitchen.drain(timeout_s=...)` first: messages still "
                               "on the rail would count as lost")
        out = self.checker.result(allow_duplicates=allow_duplicates)
        if not self._drained:
            out["ok"] = False
            out["verdict"] = "NOT DRAINED (drain timed out): " + out["verdict"]
        return out

    # ---- stopping -----------------------------------------------------------------------
    async def stop(self) -> None:
        """End every task the kitchen started (idempotent); the queues stay."""
        if not self.running:
            return
        self.running = False
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()
        await asyncio.wait([t for t in self._tasks if t is not me] or [asyncio.sleep(0)],
                           timeout=5)
        await self._stop_cooks()
        if self._unsubscribe:
            self._unsubscribe()
        if self._unregister:
            self._unregister()
        if self._made_faults:
            self.faults.detach()
        elif self.faults is not None:
            self.faults.configure(**self._faults_before)
        if self._owns_conn:
            await self.conn.close()
        if _kitchens.get(self.queue) is self:
            del _kitchens[self.queue]

    def __repr__(self):
        where = "the embedded broker" if self.embedded else "RabbitMQ"
        return (f"<Kitchen {self.queue!r} on {where} "
                f"{'running' if self.running else 'stopped'} {self.knobs}>")

    _t0 = 0.0


async def _default_connection():
    """(connection, owned): `labkit.broker()` when the session module exists, else a new
    embedded connection (owned: closed at stop)."""
    try:
        from labkit.messaging import session
    except ImportError:
        return await messaging.connect(), True
    import labkit
    make = getattr(labkit, "broker", None) or session.broker
    return await make(), False
