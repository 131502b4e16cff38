"""A TTL cache with single-flight, negative caching and refresh-ahead (chapter 06, caching).

`Cache(load, ttl_s=...)` keeps up to `max_entries` values (least recently used evicted first)
for `ttl_s` seconds each, optionally spread by ±`jitter` (a fraction, drawn from a seeded
generator) so keys loaded together do not all expire together. `await cache.get(key)`:

- a fresh entry is a *hit*;
- with `single_flight` (the default), N concurrent misses for one key make ONE `load(key)`
  call and every waiter gets its value or its exception. The load runs in its own task, so a
  waiter that is cancelled does not cancel it for the others. A failed load is not cached;
- negative caching: `load` says "no such key" by raising `NotFound`; that answer is cached for
  `negative_ttl_s` (shorter than `ttl_s`) and re-raised to callers (0 turns it off);
- refresh-ahead (stale-while-revalidate): after `refresh_after_s` an entry is still served
  (counted as `stale_served`) and ONE background load refreshes it; a failed refresh keeps the
  old value until it expires. Background tasks are tracked and end at `close()`.

Every load is bounded by `timeout_s` (`LoadTimeout`). Time is the running loop's clock, so the
same code runs in virtual time (`labkit.sim`). `stats()`: each get counts once as a hit,
negative_hit, stale_served or miss; `loads` counts calls of `load`.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable

from labkit._core import seeding
from labkit._core.validate import boolean, integer, number, optional_number, text

__all__ = ["Cache", "NotFound", "LoadTimeout", "CacheClosed"]

STATS = ("hits", "negative_hits", "stale_served", "misses", "coalesced", "loads", "load_errors",
         "refreshes", "refresh_errors", "evictions", "expirations")


class NotFound(KeyError):
    """Raised by a loader for a key that does not exist: a definite answer, cached for
    `negative_ttl_s` (unlike other errors, which are never cached)."""

    def __str__(self):  # KeyError's str is the repr of its argument; keep the message plain
        return str(self.args[0]) if self.args else "not found"


class LoadTimeout(TimeoutError):
    """`load(key)` took longer than the cache's `timeout_s`."""


class CacheClosed(RuntimeError):
    """The cache was closed: `get` no longer loads."""


@dataclass
class _Entry:
    value: Any
    negative: bool          # a cached NotFound (value is the exception)
    refresh_at: float       # loop time after which a get refreshes it in the background
    expires_at: float       # loop time after which it is gone


class Cache:
    """TTL + LRU cache in front of `load(key)` (an async function); see the module docstring."""

    def __init__(self, load: Callable[[Hashable], Awaitable[Any]], *, ttl_s: float,
                 max_entries: int = 1000, negative_ttl_s: float = 0.0,
                 refresh_after_s: float | None = None, jitter: float = 0.0,
                 timeout_s: float = 5.0, single_flight: bool = True,
                 rng: random.Random | None = None, name: str = "cache"):
        if not callable(load):
            raise ValueError(f"load must be an async function load(key), got {load!r}")
        self._load = load
        self.ttl_s = number("ttl_s", ttl_s, 0, lo_open=True, unit=" seconds")
        self.max_entries = integer("max_entries", max_entries, 1, 10_000_000)
        self.negative_ttl_s = number("negative_ttl_s", negative_ttl_s, 0, self.ttl_s,
                                     unit=" seconds (0 turns negative caching off)")
        self.refresh_after_s = optional_number("refresh_after_s", refresh_after_s, 0, self.ttl_s,
                                               lo_open=True, hi_open=True, unit=" seconds")
        self.jitter = number("jitter", jitter, 0, 1, hi_open=True, unit=" (a fraction of ttl_s)")
        self.timeout_s = number("timeout_s", timeout_s, 0, lo_open=True, unit=" seconds")
        self.single_flight = boolean("single_flight", single_flight)
        self.name = text("name", name)
        if rng is not None and not isinstance(rng, random.Random):
            raise ValueError(f"rng must be a random.Random (seeded) or None, got {rng!r}")
        self._rng = rng if rng is not None else seeding.stream(f"cache:{self.name}")
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self.counts: Counter = Counter({k: 0 for k in STATS})

    # ---- reading ---------------------------------------------------------------------------
    async def get(self, key: Hashable) -> Any:
        """The value for `key`: cached, or loaded (once per key at a time with single-flight).
        Raises NotFound for a (cached) missing key, or the load's exception."""
        if self._closed:
            raise CacheClosed(f"cache {self.name!r} is closed")
        now = asyncio.get_running_loop().time()
        entry = self._entries.get(key)
        if entry is not None and now >= entry.expires_at:
            del self._entries[key]
            self.counts["expirations"] += 1
            entry = None
        if entry is not None:
            self._entries.move_to_end(key)
            if entry.negative:
                self.counts["negative_hits"] += 1
                raise NotFound(str(entry.value))
            if entry.refresh_at <= now:
                self.counts["stale_served"] += 1
                if key not in self._inflight:
                    self.counts["refreshes"] += 1
                    self._start(key, refresh=True)
            else:
                self.counts["hits"] += 1
            return entry.value
        self.counts["misses"] += 1
        if not self.single_flight:
            return await self._load_and_store(key, refresh=False)
        task = self._inflight.get(key)
        if task is None:
            task = self._start(key, refresh=False)
        else:
            self.counts["coalesced"] += 1
        return await asyncio.shield(task)    # a cancelled waiter leaves the load running

    def peek(self, key: Hashable) -> Any:
        """The cached value (fresh or stale) without loading or counting; KeyError if none."""
        entry = self._entries[key]
        if entry.negative:
            raise NotFound(str(entry.value))
        return entry.value

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value` for `key` now (a bulk warm-up, or a write-through), with the same TTL,
        jitter and refresh time as a load."""
        self._store(key, value, negative=False, ttl_s=self.ttl_s)

    def invalidate(self, key: Hashable) -> None:
        """Forget `key`; a load already running for it still answers its waiters, but its
        result is not stored."""
        self._entries.pop(key, None)
        self._inflight.pop(key, None)

    # ---- loading ---------------------------------------------------------------------------
    def _start(self, key, *, refresh: bool) -> asyncio.Task:
        task = asyncio.ensure_future(self._load_and_store(key, refresh=refresh))
        self._inflight[key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(key, t))
        return task

    def _finished(self, key, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()        # retrieved: a refresh nobody awaits logs nothing

    async def _load_and_store(self, key, *, refresh: bool) -> Any:
        me = asyncio.current_task()
        self.counts["loads"] += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                value = await self._load(key)
        except NotFound as err:
            if self.negative_ttl_s > 0 and self._current(key, me, refresh):
                self._store(key, str(err), negative=True, ttl_s=self.negative_ttl_s)
            raise
        except TimeoutError:
            self._failed(refresh)
            raise LoadTimeout(f"cache {self.name!r}: load({key!r}) took longer than "
                              f"timeout_s={self.timeout_s:g} s") from None
        except Exception:
            self._failed(refresh)
            raise
        if self._current(key, me, refresh):
            self._store(key, value, negative=False, ttl_s=self.ttl_s)
        return value

    def _failed(self, refresh: bool) -> None:
        self.counts["refresh_errors" if refresh else "load_errors"] += 1

    def _current(self, key, me, refresh: bool) -> bool:
        """Store only if this load was not superseded by `invalidate` (or `close`)."""
        if self._closed:
            return False
        return not self.single_flight and not refresh or self._inflight.get(key) is me

    def _store(self, key, value, *, negative: bool, ttl_s: float) -> None:
        now = asyncio.get_running_loop().time()
        factor = 1.0 + self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0
        refresh_s = ttl_s if self.refresh_after_s is None or negative else self.refresh_after_s
        self._entries[key] = _Entry(value, negative, now + refresh_s * factor,
                                    now + ttl_s * factor)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.counts["evictions"] += 1

    # ---- lifecycle -------------------------------------------------------------------------
    async def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop loading: cancel the loads and refreshes still running and wait (at most
        `timeout_s`) for them to end. Cached values stay readable with `peek`."""
        timeout_s = number("timeout_s", timeout_s, 0, lo_open=True, unit=" seconds")
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False

    @property
    def in_flight(self) -> int:
        """Loads running now (first loads and background refreshes)."""
        return len(self._inflight)

    def stats(self) -> dict:
        """Running totals (see the module docstring) plus the current size."""
        return {**self.counts, "size": len(self._entries), "in_flight": len(self._inflight)}

    def __repr__(self):
        return (f"<Cache {self.name} {len(self._entries)}/{self.max_entries} ttl={self.ttl_s:g}s "
                f"single_flight={self.single_flight}>")
