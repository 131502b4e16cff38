"""Cache (labkit/patterns/cache.py): TTL and LRU bounds, single-flight (one load for N concurrent
misses, errors to every waiter and not cached, a cancelled waiter does not cancel the load),
negative caching, refresh-ahead, seeded TTL jitter, load timeouts, close(). Virtual time."""
import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import sim
from labkit.patterns.cache import Cache, CacheClosed, LoadTimeout, NotFound


class Backend:
    """A loader that counts calls, takes `latency_s`, and fails or says not-found on demand."""

    def __init__(self, latency_s=0.1):
        self.latency_s, self.calls, self.fail, self.missing = latency_s, [], set(), set()

    async def load(self, key):
        self.calls.append((asyncio.get_running_loop().time(), key))
        await asyncio.sleep(self.latency_s)
        if key in self.fail:
            raise ConnectionError(f"backend down for {key}")
        if key in self.missing:
            raise NotFound(f"no item {key}")
        return f"v:{key}:{len(self.calls)}"


def test_concurrent_misses_make_one_load_and_everyone_gets_its_value():
    async def main():
        b = Backend()
        c = Cache(b.load, ttl_s=10)
        got = await asyncio.gather(*(c.get("k") for _ in range(100)))
        return got, b.calls, c.stats()

    got, calls, stats = sim.run(main)
    assert len(calls) == 1 and set(got) == {"v:k:1"}
    assert stats["misses"] == 100 and stats["coalesced"] == 99 and stats["loads"] == 1


def test_without_single_flight_every_concurrent_miss_loads():
    async def main():
        b = Backend()
        c = Cache(b.load, ttl_s=10, single_flight=False)
        await asyncio.gather(*(c.get("k") for _ in range(50)))
        await c.get("k")
        return len(b.calls), c.stats()

    calls, stats = sim.run(main)
    assert calls == 50 and stats["hits"] == 1


def test_an_error_reaches_every_waiter_and_is_not_cached():
    async def main():
        b = Backend()
        b.fail.add("k")
        c = Cache(b.load, ttl_s=10)
        got = await asyncio.gather(*(c.get("k") for _ in range(10)), return_exceptions=True)
        b.fail.clear()
        again = await c.get("k")
        return got, again, len(b.calls), c.stats()

    got, again, calls, stats = sim.run(main)
    assert all(isinstance(g, ConnectionError) for g in got)
    assert again == "v:k:2" and calls == 2
    assert stats["load_errors"] == 1 and stats["in_flight"] == 0


def test_a_cancelled_waiter_does_not_cancel_the_load_for_the_others():
    async def main():
        b = Backend(latency_s=1.0)
        c = Cache(b.load, ttl_s=10)
        first = asyncio.ensure_future(c.get("k"))
        others = [asyncio.ensure_future(c.get("k")) for _ in range(3)]
        await asyncio.sleep(0.5)
        first.cancel()
        got = await asyncio.gather(*others)
        return first.cancelled(), got, len(b.calls)

    cancelled, got, calls = sim.run(main)
    assert cancelled and got == ["v:k:1"] * 3 and calls == 1


def test_entries_expire_after_ttl_and_different_keys_load_in_parallel():
    async def main():
        b = Backend(latency_s=1.0)
        c = Cache(b.load, ttl_s=5)
        await asyncio.gather(c.get("a"), c.get("b"))
        t_loaded = asyncio.get_running_loop().time()
        await asyncio.sleep(4.9)
        await c.get("a")                       # still fresh
        await asyncio.sleep(0.2)
        await c.get("a")                       # expired: loads again
        return t_loaded, b.calls, c.stats()

    t_loaded, calls, stats = sim.run(main)
    assert t_loaded == pytest.approx(1.0)      # a and b loaded side by side, not one after the other
    assert [k for _, k in calls] == ["a", "b", "a"]
    assert stats["hits"] == 1 and stats["expirations"] == 1


def test_lru_eviction_keeps_the_recently_used_keys_and_the_size_bounded():
    async def main():
        b = Backend(latency_s=0.0)
        c = Cache(b.load, ttl_s=100, max_entries=3)
        for k in "abc":
            await c.get(k)
        await c.get("a")                       # a is now the most recent
        await c.get("d")                       # evicts b, the least recently used
        return "a" in c, "b" in c, len(c), c.stats()["evictions"]

    assert sim.run(main) == (True, False, 3, 1)


def test_not_found_is_cached_for_the_shorter_negative_ttl():
    async def main():
        b = Backend(latency_s=0.0)
        b.missing.add("ghost")
        c = Cache(b.load, ttl_s=60, negative_ttl_s=2)
        errors = []
        for wait_s in (0, 1, 1.5):             # t = 0, 1 (cached), 2.5 (expired: loads again)
            await asyncio.sleep(wait_s)
            with pytest.raises(NotFound, match="no item ghost") as err:
                await c.get("ghost")
            errors.append(err.value)
        return len(b.calls), c.stats()

    calls, stats = sim.run(main)
    assert calls == 2 and stats["negative_hits"] == 1 and stats["load_errors"] == 0


def test_not_found_without_negative_caching_loads_every_time():
    async def main():
        b = Backend(latency_s=0.0)
        b.missing.add("ghost")
        c = Cache(b.load, ttl_s=60)
        for _ in range(3):
            with pytest.raises(NotFound):
                await c.get("ghost")
        return len(b.calls)

    assert sim.run(main) == 3


def test_refresh_ahead_serves_the_old_value_and_refreshes_once_in_the_background():
    async def main():
        b = Backend(latency_s=1.0)
        c = Cache(b.load, ttl_s=10, refresh_after_s=6)
        first = await c.get("k")                       # t = 1
        await asyncio.sleep(6.5)                       # t = 7.5: past refresh_after_s
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stale = await asyncio.gather(*(c.get("k") for _ in range(20)))
        waited = loop.time() - t0
        await asyncio.sleep(1.5)                       # the refresh has landed
        fresh = await c.get("k")
        await c.close()
        return first, stale, waited, fresh, len(b.calls), c.stats()

    first, stale, waited, fresh, calls, stats = sim.run(main)
    assert stale == [first] * 20 and waited == 0       # nobody waited for the refresh
    assert fresh == "v:k:2" and calls == 2
    assert stats["stale_served"] == 20 and stats["refreshes"] == 1 and stats["hits"] == 1


def test_a_failed_refresh_keeps_the_old_value_until_it_expires():
    async def main():
        b = Backend(latency_s=0.5)
        c = Cache(b.load, ttl_s=10, refresh_after_s=5)
        old = await c.get("k")
        b.fail.add("k")
        await asyncio.sleep(5)
        assert await c.get("k") == old                 # serves, refresh starts and fails
        await asyncio.sleep(1)
        assert await c.get("k") == old                 # still served; another refresh
        await asyncio.sleep(5)                         # now past the ttl: a real miss
        with pytest.raises(ConnectionError):
            await c.get("k")
        return c.stats()

    stats = sim.run(main)
    assert stats["refresh_errors"] == 2 and stats["load_errors"] == 1


def test_a_slow_load_times_out_for_every_waiter():
    async def main():
        b = Backend(latency_s=30)
        c = Cache(b.load, ttl_s=10, timeout_s=2)
        t0 = asyncio.get_running_loop().time()
        got = await asyncio.gather(*(c.get("k") for _ in range(5)), return_exceptions=True)
        return got, asyncio.get_running_loop().time() - t0, c.in_flight

    got, waited, in_flight = sim.run(main)
    assert all(isinstance(g, LoadTimeout) and "timeout_s=2" in str(g) for g in got)
    assert waited == pytest.approx(2) and in_flight == 0


def test_close_ends_background_tasks_and_refuses_new_gets():
    async def main():
        b = Backend(latency_s=100)
        c = Cache(b.load, ttl_s=1000)
        waiter = asyncio.ensure_future(c.get("k"))
        await asyncio.sleep(1)
        await c.close()
        await asyncio.wait([waiter], timeout=1)
        with pytest.raises(CacheClosed):
            await c.get("k")
        return waiter.done(), c.in_flight, len(c._tasks)

    assert sim.run(main) == (True, 0, 0)


def test_invalidate_during_a_load_answers_waiters_but_does_not_store():
    async def main():
        b = Backend(latency_s=1)
        c = Cache(b.load, ttl_s=100)
        waiter = asyncio.ensure_future(c.get("k"))
        await asyncio.sleep(0.5)
        c.invalidate("k")
        got = await waiter
        return got, "k" in c

    assert sim.run(main) == ("v:k:1", False)


def test_jitter_spreads_expiries_within_the_fraction_and_is_seeded():
    async def expiries(seed):
        b = Backend(latency_s=0.0)
        c = Cache(b.load, ttl_s=10, jitter=0.2, rng=random.Random(seed), max_entries=100)
        for k in range(50):
            await c.get(k)
        return [c._entries[k].expires_at for k in range(50)]

    a = sim.run(lambda: expiries(1))
    assert all(8 <= t <= 12 for t in a) and max(a) - min(a) > 2
    assert a == sim.run(lambda: expiries(1)) and a != sim.run(lambda: expiries(2))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"ttl_s": 0}, "ttl_s"), ({"ttl_s": 5, "max_entries": 0}, "max_entries"),
    ({"ttl_s": 5, "negative_ttl_s": 6}, "negative_ttl_s"),
    ({"ttl_s": 5, "refresh_after_s": 5}, "refresh_after_s"),
    ({"ttl_s": 5, "jitter": 1.0}, "jitter"), ({"ttl_s": 5, "timeout_s": 0}, "timeout_s"),
    ({"ttl_s": 5, "single_flight": 1}, "single_flight"), ({"ttl_s": 5, "rng": 3}, "rng"),
])
def test_bad_arguments_name_the_argument(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Cache(Backend().load, **kwargs)


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 9), st.floats(0, 3)), min_size=1, max_size=40),
       max_entries=st.integers(1, 5))
def test_any_sequence_stays_bounded_and_never_serves_expired_values(ops, max_entries):
    async def main():
        b = Backend(latency_s=0.1)
        c = Cache(b.load, ttl_s=2, max_entries=max_entries)
        loop = asyncio.get_running_loop()
        loaded_at = {}
        for key, wait_s in ops:
            await asyncio.sleep(wait_s)
            before = len(b.calls)
            value = await c.get(key)
            if len(b.calls) > before:
                loaded_at[value] = loop.time()
            assert loop.time() - loaded_at[value] < 2 + 1e-9   # never older than ttl_s
            assert len(c) <= max_entries
        s = c.stats()
        assert s["hits"] + s["misses"] == len(ops) and s["loads"] == len(b.calls)

    sim.run(main)


def test_put_stores_with_the_same_ttl_so_a_bulk_warm_up_expires_together():
    async def main():
        b = Backend(latency_s=0.0)
        c = Cache(b.load, ttl_s=5)
        for k in "abc":
            c.put(k, k.upper())
        hits = [await c.get(k) for k in "abc"]
        await asyncio.sleep(5)
        await asyncio.gather(*(c.get(k) for k in "abc"))
        return hits, len(b.calls), c.stats()["expirations"]

    assert sim.run(main) == (["A", "B", "C"], 3, 3)
