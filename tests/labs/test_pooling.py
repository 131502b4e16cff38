"""The pooling lab (labkit/labs/pooling.py): the server counts one connection per request
without a pool, at most `concurrency` with a shared session and exactly k with a pool of k,
where requests queue for a connection; the tutorial's pool fails as the lesson says, the fix
does not."""
import pytest

import labkit
from labkit.labs import pooling


def test_connections_and_queueing_per_mode(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            users.faults.set(error_rate=0.0, jitter_ms=0.0)
            rows = await pooling.compare_pooling(users, requests=60, concurrency=12,
                                                 pool_limit=3, latency_ms=2.0)
            assert users.faults.latency_ms == 0          # restored
            return rows
        finally:
            await labkit.shutdown()
    new, shared, pool = run(main())
    assert [r["mode"] for r in (new, shared, pool)] == \
        ["new connection per request", "shared session", "pool of 3"]
    assert all(r["ok"] == 60 for r in (new, shared, pool))
    assert new["connections"] == 60 and new["queued"] == 0
    assert 1 <= shared["connections"] <= 12 and shared["queued"] == 0
    assert pool["connections"] == 3
    assert pool["queued"] > 0 and pool["queue_wait_total_s"] > 0
    assert "pool of 3" in pooling.pooling_table([new, shared, pool])


def test_tutorial_pool_closing_one_session_breaks_the_other(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            return await pooling.tutorial_pool_lesson(users.url, timeout_s=10)
        finally:
            await labkit.shutdown()
    out = run(main())
    assert out["same_session"] is False and out["same_connector"] is True
    assert out["a_status"] == 200
    assert out["b.closed"] is True and out["b_error"] == "RuntimeError: Session is closed"


def test_session_per_host_is_one_owned_session_closed_once(run):
    async def main():
        users = await labkit.start_service("users")
        items = await labkit.start_service("inventory")
        try:
            pool = pooling.SessionPerHost(limit_per_host=4, timeout_s=10)
            a, b = pool.session(users.url), pool.session(users.url + "/users")
            assert a is b and pool.session(items.url) is not a
            before = users.connections_accepted
            for _ in range(5):
                async with pool.session(users.url).get(users.url + "/health") as r:
                    assert r.status == 200
            assert users.connections_accepted - before == 1
            await pool.close()
            await pool.close()
            assert a.closed and len(pool.hosts) == 0
            with pytest.raises(RuntimeError, match="closed"):
                pool.session(users.url)
        finally:
            await labkit.shutdown()
    run(main())


@pytest.mark.parametrize("kwargs, needle", [({"requests": 0}, "requests"),
                                            ({"pool_limit": 0}, "pool_limit"),
                                            ({"latency_ms": -1}, "latency_ms")])
def test_bad_arguments(run, kwargs, needle):
    async def main():
        users = await labkit.start_service("users")
        try:
            with pytest.raises(ValueError, match=needle):
                await pooling.compare_pooling(users, **kwargs)
        finally:
            await labkit.shutdown()
    run(main())
