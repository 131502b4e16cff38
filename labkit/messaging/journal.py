"""Event records of a messaging experiment: what the broker and the consumers saw.

Every step a message takes (published, confirmed, delivered, acked, dead-lettered, ...) is one
small `Event`. The embedded broker writes them itself; on a real RabbitMQ the client writes the
ones it can see (see `labkit.messaging.amqp`). Charts and `labkit.messaging.checker` read only
these records. Bounded: the journal keeps the last `max_events` events plus running counters of
every kind, and at most `MAX_LISTENERS` listeners, each with an unsubscribe. Chapter 02.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Callable, NamedTuple

from labkit._core import validate

__all__ = ["Event", "Journal", "KINDS", "MAX_LISTENERS"]

KINDS = (
    "published",      # a publisher sent it
    "confirmed",      # the broker confirmed it (publisher confirms)
    "returned",       # unroutable and mandatory: handed back to the publisher
    "unroutable",     # unroutable and not mandatory: the broker dropped it
    "delivered",      # given to a consumer (redelivered=True if seen before)
    "acked", "nacked", "rejected",   # the consumer settled it (requeue says how)
    "requeued",       # back in its queue (nack/reject with requeue, channel closed)
    "dead_lettered",  # moved to the dead-letter exchange (reason: rejected, expired, ...)
    "dropped",        # discarded with no dead-letter exchange (reason as above, or deleted)
    "handled",        # the consumer's handler did its work (for duplicates)
)
MAX_LISTENERS = 16


class Event(NamedTuple):
    """One step of one message. `t` is loop time in seconds (virtual inside labkit.sim)."""
    t: float
    kind: str
    message_id: str | None
    queue: str = ""
    reason: str = ""
    redelivered: bool = False
    requeue: bool = False


def _now() -> float:
    loop = asyncio._get_running_loop()     # None outside a loop (no exception to pay for)
    return loop.time() if loop is not None else 0.0


class Journal:
    """The last `max_events` events, counters of all of them, and listeners.

    `subscribe(fn)` calls `fn(event)` for every new event and returns the unsubscribe function;
    a listener that raises is removed (its error is kept in `listener_errors`, bounded).
    """

    def __init__(self, max_events: int = 10_000):
        self.max_events = validate.integer("max_events", max_events, 1, 10_000_000)
        self.events: deque[Event] = deque(maxlen=self.max_events)
        self.counts: Counter = Counter()
        self.listener_errors: deque[str] = deque(maxlen=20)
        self._listeners: list[Callable[[Event], None]] = []

    def record(self, kind: str, message_id: str | None, queue: str = "", reason: str = "",
               redelivered: bool = False, requeue: bool = False) -> Event:
        """Append one event (kind from KINDS) and tell the listeners."""
        event = Event(_now(), kind, message_id, queue, reason, redelivered, requeue)
        self.events.append(event)
        self.counts[kind if not reason else f"{kind}:{reason}"] += 1
        if not self._listeners:
            return event
        for fn in tuple(self._listeners):
            try:
                fn(event)
            except Exception as e:  # a broken chart must not break the broker
                self.listener_errors.append(f"{fn!r}: {e!r}")
                self.unsubscribe(fn)
        return event

    def handled(self, message) -> None:
        """A handler calls this after doing its work, so the checker can count duplicates."""
        self.record("handled", getattr(message, "message_id", message),
                    getattr(message, "queue", ""))

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {fn!r}")
        if len(self._listeners) >= MAX_LISTENERS:
            raise ValueError(f"a journal takes at most {MAX_LISTENERS} listeners; unsubscribe "
                             "old ones (subscribe returns the function that does it)")
        self._listeners.append(fn)
        return lambda: self.unsubscribe(fn)

    def unsubscribe(self, fn) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def summary(self) -> dict:
        """Counters by kind (and kind:reason), as a plain dict."""
        return dict(self.counts)
