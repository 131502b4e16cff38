"""A seeded, live fault model for the embedded broker (chapter 02's fault panel).

Set it on a broker (`BrokerFaults(broker, crash_rate=0.1)`), change knobs any time with
`configure(...)`. Every draw comes from one seeded stream per instance, so a run repeats.

- `crash_rate`: share of deliveries whose handler dies before it settles: the handler runs
  (its work is done), its ack/nack/reject raises `ConsumerCrashed`, and the broker redelivers
  the message (redelivered=True), as when a consumer process dies and its channel closes. The
  rest of the consumer keeps going (a restarted consumer, in one step).
- `processing_s`: time each delivery waits before the handler runs: seconds, or a
  `labkit.sim` Fixed / Exponential / LogNormal distribution.
- `publish_latency_ms`: delay before each publish reaches the broker.
- `restart()`: the broker restarts: connections drop, non-durable queues and exchanges and
  non-persistent messages are lost; durable queues keep their persistent messages, unacked
  ones come back as redelivered.
- `cut_off(connection)`: the broker loses one connection (as after a missed heartbeat):
  its channels close and their unacked messages go to other consumers, while its handlers,
  which still run, get `ChannelClosed` when they settle.
"""
from __future__ import annotations

import asyncio
import heapq

from labkit._core import seeding, validate
from labkit.sim.queueing import Exponential, Fixed, LogNormal

__all__ = ["BrokerFaults", "ConsumerCrashed"]


class ConsumerCrashed(RuntimeError):
    """The fault model killed this handler before it could settle its message."""


class BrokerFaults:
    """Live, seeded faults of one embedded broker (see the module docstring)."""

    def __init__(self, broker, *, crash_rate: float = 0.0, processing_s=0.0,
                 publish_latency_ms: float = 0.0, seed: int | None = None):
        from labkit.messaging.broker import Broker
        if not isinstance(broker, Broker):
            raise ValueError(f"broker must be an embedded labkit.messaging.Broker, got {broker!r}")
        self.broker = broker
        self._rng = (seeding.stream("broker-faults") if seed is None
                     else seeding.rng("broker-faults", validate.integer("seed", seed)))
        self.crashes = 0
        self.restarts = 0
        self.configure(crash_rate=crash_rate, processing_s=processing_s,
                       publish_latency_ms=publish_latency_ms)
        broker.faults = self

    def configure(self, *, crash_rate: float | None = None, processing_s=None,
                  publish_latency_ms: float | None = None) -> None:
        """Change knobs (None leaves a knob as it is); takes effect from the next message."""
        if crash_rate is not None:
            self.crash_rate = validate.number("crash_rate", crash_rate, 0.0, 1.0)
        if processing_s is not None:
            if isinstance(processing_s, (Fixed, Exponential, LogNormal)):
                self.processing = processing_s
            else:
                self.processing = Fixed(validate.number("processing_s", processing_s, 0.0,
                                                        unit=" s (or a Fixed, Exponential or "
                                                        "LogNormal)"))
            self._processing = self.processing.sampler(self._rng)
        if publish_latency_ms is not None:
            self.publish_latency_ms = validate.number("publish_latency_ms", publish_latency_ms,
                                                      0.0, 60_000.0, unit=" ms")

    def detach(self) -> None:
        """Take the fault model off its broker (no faults from the next message on)."""
        if self.broker.faults is self:
            self.broker.faults = None

    def summary(self) -> dict:
        return {"crash_rate": self.crash_rate, "processing_mean_s": self.processing.mean_s,
                "publish_latency_ms": self.publish_latency_ms, "crashes": self.crashes,
                "restarts": self.restarts}

    async def publish_delay(self) -> None:
        if self.publish_latency_ms > 0:
            await asyncio.sleep(self.publish_latency_ms / 1000.0)

    async def before_handler(self, message) -> None:
        """Called by the broker before each handler: processing time, then maybe a crash."""
        delay = self._processing()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.crash_rate > 0 and self._rng.random() < self.crash_rate:
            self.crashes += 1
            message.crashed = True

    def restart(self) -> None:
        """Restart the broker (see the module docstring for what survives)."""
        b = self.broker
        self.restarts += 1
        for conn in list(b._connections.values()):
            conn.is_closed = True
            b.close_channels([ch._state for ch in conn.channels], "the broker restarted")
            b.close_connection(conn.owner)
            b._connections.pop(conn.owner, None)
        for name, q in list(b.queues.items()):
            if not q.durable:
                b._drop_queue(q)
                continue
            kept = [(pos, m) for pos, m in q.ready if m.persistent]
            for _, m in q.ready:
                if not m.persistent:
                    b.journal.record("dropped", m.message_id, name, "restart")
            heapq.heapify(kept)
            q.ready[:] = kept
        for name in [n for n, ex in b.exchanges.items() if not ex.durable]:
            del b.exchanges[name]

    def cut_off(self, connection) -> None:
        """The broker loses `connection` (its handlers keep running, their acks fail)."""
        b = self.broker
        connection.is_closed = True
        b.close_channels([ch._state for ch in connection.channels], "cut off from the broker")
        b.close_connection(connection.owner)
        b._connections.pop(connection.owner, None)

