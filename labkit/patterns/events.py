"""Domain events and an event dispatcher in which no handler failure is lost (chapter 02).

The tutorial's `EventDispatcher.dispatch` calls each handler in turn and `print`s an error:
a handler that raises is forgotten as soon as the cell output scrolls away, and a slow one
holds up every handler after it. Here handlers run concurrently, each bounded by
`handler_timeout_s`; one that raises or times out neither stops the others nor disappears:
the `DispatchReport` lists it, and `dispatcher.failures` keeps the newest `max_failures`.

A sync handler runs inline on the loop (it cannot be interrupted, so it cannot time out: keep
it short); an async one (or a sync one returning an awaitable) runs as its own task. Event ids
come from `labkit._core.seeding.stream("event-id")`, so a notebook re-run from `set_seed`
gives the same ids; times are the running loop's clock (virtual under labkit.sim), seconds.
"""
from __future__ import annotations

import asyncio
import inspect
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from labkit._core import seeding, validate

__all__ = ["DomainEvent", "DispatchReport", "EventDispatcher", "HandlerTimeout", "ALL",
           "handler_name"]

ALL = "*"   # subscribe to this event type to receive every event


def _new_event_id() -> str:
    """A UUID-shaped id drawn from a seeded stream (deterministic after set_seed)."""
    return str(uuid.UUID(int=seeding.stream("event-id").getrandbits(128), version=4))


def _loop_time_or_zero() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened in the domain: `type` ("order.placed"), `data`, a seeded
    `event_id`, and `occurred_at_s` (loop time; 0.0 when made outside a running loop)."""
    type: str
    data: dict = field(default_factory=dict)
    event_id: str = field(default_factory=_new_event_id)
    occurred_at_s: float = field(default_factory=_loop_time_or_zero)

    def __post_init__(self):
        if not isinstance(self.type, str) or not self.type or self.type == ALL:
            raise ValueError(f"type must be a non-empty str naming the event (not {ALL!r}, "
                             f"which means 'every type' to subscribers), got {self.type!r}")
        if not isinstance(self.data, dict):
            raise ValueError(f"data must be a dict, got {type(self.data).__name__}")
        if not isinstance(self.event_id, str) or not self.event_id:
            raise ValueError(f"event_id must be a non-empty str, got {self.event_id!r}")
        object.__setattr__(self, "occurred_at_s",
                           validate.number("occurred_at_s", self.occurred_at_s, unit=" s"))

    def to_dict(self) -> dict:
        """The event as plain JSON-able data (as the tutorial's `to_dict`)."""
        return {"event_id": self.event_id, "type": self.type, "data": dict(self.data),
                "occurred_at_s": self.occurred_at_s}


@dataclass(frozen=True)
class DispatchReport:
    """What one `dispatch` did: `handled` handlers finished, `failures` is a tuple of
    (handler name, repr(error)) for those that raised or timed out; `ok` if none failed."""
    event_id: str
    event_type: str
    handled: int
    failures: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def handlers(self) -> int:
        """How many handlers the event was given to."""
        return self.handled + len(self.failures)


def handler_name(handler: Callable) -> str:
    """A readable name for a handler (its qualified name, else its repr)."""
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    return name if isinstance(name, str) else repr(handler)


class HandlerTimeout(TimeoutError):
    """A handler ran longer than `handler_timeout_s` and was cancelled."""


class EventDispatcher:
    """Subscribe handlers per event type ("*" = every type); `await dispatch(event)`.

    `handler_timeout_s` bounds each async handler; `max_failures` bounds `failures` (a deque
    of (event_id, handler name, repr(error)), newest last); `max_handlers` bounds the handlers
    of one event type (ValueError beyond it: usually a subscribe inside a loop by mistake).
    Chapter 02.
    """

    def __init__(self, *, handler_timeout_s: float = 5.0, max_failures: int = 100,
                 max_handlers: int = 64):
        self.handler_timeout_s = validate.number("handler_timeout_s", handler_timeout_s, 0,
                                                 lo_open=True, unit=" s")
        self.max_failures = validate.integer("max_failures", max_failures, 1)
        self.max_handlers = validate.integer("max_handlers", max_handlers, 1)
        self._handlers: dict[str, list[tuple[object, Callable]]] = {}
        self.failures: deque[tuple[str, str, str]] = deque(maxlen=self.max_failures)
        self.counts: Counter = Counter()   # dispatched, handled, failed, timed_out (running)

    def subscribe(self, event_type: str, handler: Callable) -> Callable[[], None]:
        """Call `handler(event)` for each event of `event_type`; returns `unsubscribe()`."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty str (or {ALL!r} for every type), "
                             f"got {event_type!r}")
        if not callable(handler):
            raise ValueError(f"handler must be callable (a function taking the event), "
                             f"got {handler!r}")
        entries = self._handlers.setdefault(event_type, [])
        if len(entries) >= self.max_handlers:
            raise ValueError(f"event_type {event_type!r} already has {len(entries)} handlers "
                             f"(max_handlers={self.max_handlers}); unsubscribe one first, or "
                             "check that you do not subscribe inside a loop")
        token = object()
        entries.append((token, handler))

        def unsubscribe() -> None:
            current = self._handlers.get(event_type, [])
            kept = [e for e in current if e[0] is not token]
            if kept:
                self._handlers[event_type] = kept
            else:
                self._handlers.pop(event_type, None)
        return unsubscribe

    def handlers(self, event_type: str) -> list[Callable]:
        """The handlers an event of `event_type` goes to (its own, then the "*" ones)."""
        own = [h for _, h in self._handlers.get(event_type, [])]
        return own + ([h for _, h in self._handlers.get(ALL, [])] if event_type != ALL else [])

    async def dispatch(self, event: DomainEvent) -> DispatchReport:
        """Give `event` to its handlers concurrently; wait for all (each at most
        `handler_timeout_s`) and report. Never raises for a handler's error."""
        if not isinstance(event, DomainEvent):
            raise ValueError(f"event must be a DomainEvent, got {type(event).__name__}")
        handlers = self.handlers(event.type)
        self.counts["dispatched"] += 1
        results = await asyncio.gather(*(self._run_one(h, event) for h in handlers))
        failures = tuple((name, err) for name, err in results if err is not None)
        for name, err in failures:
            self.failures.append((event.event_id, name, err))
        self.counts["handled"] += len(results) - len(failures)
        self.counts["failed"] += len(failures)
        return DispatchReport(event.event_id, event.type, len(results) - len(failures), failures)

    async def _run_one(self, handler: Callable, event: DomainEvent) -> tuple[str, str | None]:
        name = handler_name(handler)
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                try:
                    await asyncio.wait_for(result, self.handler_timeout_s)
                except asyncio.TimeoutError:
                    self.counts["timed_out"] += 1
                    raise HandlerTimeout(f"handler {name} took longer than "
                                         f"handler_timeout_s={self.handler_timeout_s} s on "
                                         f"event {event.event_id}") from None
        except Exception as e:    # noqa: BLE001 - the point: record it, run the others
            return name, repr(e)
        return name, None

    def summary(self) -> dict:
        """Running counts and the handlers per type, for checks and notebooks."""
        return {"counts": dict(self.counts), "failures_kept": len(self.failures),
                "handlers": {t: len(v) for t, v in self._handlers.items()}}
