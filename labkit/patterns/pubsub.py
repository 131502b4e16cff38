"""In-process publish/subscribe with bounded per-subscriber queues and an overflow policy
(chapter 02).

The tutorial's `PubSubManager.publish` holds its lock while it awaits `queue.put` on each
subscriber's queue: one full queue (a slow subscriber) stalls that publisher, every other
publisher waiting for the lock, and every subscriber after it; and its `except QueueFull`
never runs, because `await put()` waits instead of raising (see labkit.labs.pubsub_stall).
Here every subscriber has its own bounded queue and an explicit policy for when it is full:

- "drop-oldest": make room by discarding the oldest queued event (the newest N are kept);
- "drop-newest": discard the event being published (the oldest N are kept);
- "block": wait at most `block_timeout_s` for room, for all full subscribers at once, then
  count the event dropped ("timed-out").

`publish` holds no lock: it takes a snapshot of the subscribers, offers the event to each
without waiting, then waits (concurrently, bounded) only for the "block" ones that are full.
So a slow subscriber costs the publisher at most `block_timeout_s` and costs the other
subscribers nothing. The topic "*" receives every topic. Times are the loop's (virtual under
labkit.sim), seconds.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from labkit._core import validate

__all__ = ["PubSub", "Subscription", "PublishReport", "SubscriptionClosed", "OVERFLOW_POLICIES",
           "ALL_TOPICS"]

OVERFLOW_POLICIES = ("drop-oldest", "drop-newest", "block")
ALL_TOPICS = "*"


class SubscriptionClosed(RuntimeError):
    """`get()` on a closed subscription whose queue is empty."""


@dataclass(frozen=True)
class PublishReport:
    """What one `publish` did: `outcomes` is a tuple of (subscription name, outcome), outcome
    one of "delivered", "dropped-oldest" (delivered, an older event was discarded to make
    room), "dropped-newest", "timed-out" (block policy, no room in time) or "closed" (it was
    closed while the publisher waited). `waited_s`: how long the publisher was held."""
    topic: str
    outcomes: tuple[tuple[str, str], ...]
    waited_s: float

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(o for _, o in self.outcomes))

    @property
    def delivered(self) -> int:
        """Subscribers whose queue took this event ("delivered" or "dropped-oldest")."""
        return sum(o in ("delivered", "dropped-oldest") for _, o in self.outcomes)


class Subscription:
    """One subscriber's bounded queue. `await get(timeout_s=...)` or `async for event in sub`
    (ends when closed and drained). `delivered`: events its queue took; `dropped`: events it
    lost (discarded oldest, refused newest, or timed out); `close()` unsubscribes."""

    def __init__(self, owner: "PubSub", topic: str, name: str, maxsize: int, overflow: str):
        self._owner, self.topic, self.name = owner, topic, name
        self.maxsize, self.overflow = maxsize, overflow
        self._buf: deque = deque()
        self._getters: deque[asyncio.Future] = deque()
        self._putters: deque[asyncio.Future] = deque()
        self.delivered = 0
        self.dropped = 0
        self.taken = 0
        self.closed = False

    def __repr__(self):
        return (f"<Subscription {self.name} {self.overflow} {len(self._buf)}/{self.maxsize} "
                f"delivered={self.delivered} dropped={self.dropped}"
                f"{' closed' if self.closed else ''}>")

    def qsize(self) -> int:
        return len(self._buf)

    def full(self) -> bool:
        return len(self._buf) >= self.maxsize

    # ---- consumer side -------------------------------------------------------------------
    async def get(self, *, timeout_s: float | None = 5.0) -> Any:
        """The next event; waits at most `timeout_s` (TimeoutError; None: until an event
        arrives or the subscription closes). SubscriptionClosed once closed and empty."""
        timeout_s = validate.optional_number("timeout_s", timeout_s, 0, unit=" s")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._buf:
            if self.closed:
                raise SubscriptionClosed(f"subscription {self.name} is closed")
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"no event on {self.name} within timeout_s={timeout_s} s")
            await _wait(self._getters, loop, deadline)
        event = self._buf.popleft()
        self.taken += 1
        _wake(self._putters)           # room for a blocked publisher
        return event

    def get_nowait(self) -> Any:
        """The next event, or IndexError if none is queued."""
        if not self._buf:
            raise IndexError(f"no event queued on {self.name}")
        event = self._buf.popleft()
        self.taken += 1
        _wake(self._putters)
        return event

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.get(timeout_s=None)
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Unsubscribe: no new events; queued ones can still be taken; waiters are woken."""
        if self.closed:
            return
        self.closed = True
        self._owner._remove(self)
        for waiters in (self._getters, self._putters):
            while waiters:
                _wake(waiters)

    # ---- publisher side ------------------------------------------------------------------
    def _offer(self, event) -> str | None:
        """Queue `event` without waiting; the outcome, or None if the caller must wait."""
        if self.closed:
            return "closed"
        if len(self._buf) < self.maxsize:
            self._put(event)
            return "delivered"
        if self.overflow == "drop-oldest":
            self._buf.popleft()
            self.dropped += 1
            self._put(event)
            return "dropped-oldest"
        if self.overflow == "drop-newest":
            self.dropped += 1
            return "dropped-newest"
        return None

    def _put(self, event) -> None:
        self._buf.append(event)
        self.delivered += 1
        _wake(self._getters)

    async def _put_by(self, event, deadline: float) -> str:
        """Block policy: wait for room until `deadline` (loop time), then give up."""
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                return "closed"
            if len(self._buf) < self.maxsize:
                self._put(event)
                return "delivered"
            if loop.time() >= deadline:
                self.dropped += 1
                return "timed-out"
            await _wait(self._putters, loop, deadline)


def _wake(waiters: deque) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
            return


async def _wait(waiters: deque, loop, deadline: float | None) -> None:
    """Park on a future until woken or until `deadline` (loop time); no lock is held."""
    fut = loop.create_future()
    waiters.append(fut)
    timer = None if deadline is None else loop.call_at(
        deadline, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled():
            _wake(waiters)             # we were woken as we were cancelled: pass it on
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if not fut.done():
            fut.cancel()
        try:
            waiters.remove(fut)
        except ValueError:
            pass


class PubSub:
    """Topics with bounded subscriber queues (chapter 02).

    `maxsize` and `overflow` are the defaults for `subscribe`; `block_timeout_s` is the
    longest a "block" subscriber can hold a publish; at most `max_subscribers` subscriptions
    at once (ValueError beyond: close the ones you no longer read).
    """

    def __init__(self, *, maxsize: int = 100, overflow: str = "drop-oldest",
                 block_timeout_s: float = 0.1, max_subscribers: int = 1000):
        self.maxsize = validate.integer("maxsize", maxsize, 1)
        self.overflow = validate.choice("overflow", overflow, OVERFLOW_POLICIES)
        self.block_timeout_s = validate.number("block_timeout_s", block_timeout_s, 0, unit=" s")
        self.max_subscribers = validate.integer("max_subscribers", max_subscribers, 1)
        self._topics: dict[str, list[Subscription]] = {}
        self._made = 0
        self.counts: Counter = Counter()    # published, and each outcome (running totals)

    def subscribe(self, topic: str, *, maxsize: int | None = None,
                  overflow: str | None = None) -> Subscription:
        """A new subscription to `topic` ("*": every topic) with its own bounded queue."""
        _check_topic(topic, allow_all=True)
        maxsize = self.maxsize if maxsize is None else validate.integer("maxsize", maxsize, 1)
        overflow = self.overflow if overflow is None else validate.choice(
            "overflow", overflow, OVERFLOW_POLICIES)
        if self.subscriber_count() >= self.max_subscribers:
            raise ValueError(f"this PubSub already has {self.max_subscribers} subscriptions "
                             f"(max_subscribers); close() the ones you no longer read")
        self._made += 1
        sub = Subscription(self, topic, f"{topic}#{self._made}", maxsize, overflow)
        self._topics.setdefault(topic, []).append(sub)
        return sub

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is None:
            return sum(len(v) for v in self._topics.values())
        return len(self._topics.get(topic, ()))

    def _remove(self, sub: Subscription) -> None:
        subs = self._topics.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._topics.pop(sub.topic, None)

    async def publish(self, topic: str, event: Any) -> PublishReport:
        """Offer `event` to every subscriber of `topic` (and of "*"); returns the outcomes.
        Waits only for full "block" subscribers, all at once, at most `block_timeout_s`."""
        _check_topic(topic, allow_all=False)
        loop = asyncio.get_running_loop()
        start = loop.time()
        subs = list(self._topics.get(topic, ())) + list(self._topics.get(ALL_TOPICS, ()))
        outcomes: dict[str, str] = {}
        waiting = []
        for sub in subs:                  # no await in this loop: nothing can interleave
            outcome = sub._offer(event)
            if outcome is None:
                waiting.append(sub)
            outcomes[sub.name] = outcome
        if waiting:
            deadline = start + self.block_timeout_s
            done = await asyncio.gather(*(s._put_by(event, deadline) for s in waiting))
            for sub, outcome in zip(waiting, done):
                outcomes[sub.name] = outcome
        self.counts["published"] += 1
        self.counts.update(outcomes.values())
        return PublishReport(topic, tuple(outcomes.items()), loop.time() - start)

    def close(self) -> None:
        """Close every subscription (their readers end once drained)."""
        for subs in list(self._topics.values()):
            for sub in list(subs):
                sub.close()

    def summary(self) -> dict:
        return {"counts": dict(self.counts), "subscribers": {
            s.name: {"overflow": s.overflow, "maxsize": s.maxsize, "queued": s.qsize(),
                     "delivered": s.delivered, "dropped": s.dropped}
            for subs in self._topics.values() for s in subs}}


def _check_topic(topic, *, allow_all: bool) -> str:
    if not isinstance(topic, str) or not topic or (topic == ALL_TOPICS and not allow_all):
        extra = f' ("{ALL_TOPICS}" only to subscribe to every topic)' if not allow_all else \
            f' (or "{ALL_TOPICS}" for every topic)'
        raise ValueError(f"topic must be a non-empty str{extra}, got {topic!r}")
    return topic
