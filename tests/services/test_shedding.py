"""Load shedding on a real labkit service: off by default, 503 + Retry-After over the limit,
and a knob set on a running service takes effect."""
import asyncio

import pytest

import labkit
from labkit.patterns.limiter import AIMD, Limiter
from labkit.services.shedding import Shedding


async def burst(client, n, path="/health"):
    return await asyncio.gather(*(client.get(path, timeout_s=30) for _ in range(n)))


def test_off_by_default_and_a_knob_set_later_takes_effect(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            assert users.shedding is None
            users.faults.latency_ms = 1000             # every request holds its slot 1 s
            async with labkit.AsyncClient(users.url) as client:
                before = await burst(client, 6)
                users.shedding = Shedding(max_concurrency=2, retry_after_s=2.5)
                during = await burst(client, 6)
                users.shedding = None
                after = await burst(client, 6)
            return before, during, after, dict(users.counts), dict(users.status_counts), \
                [s.fault for s in users.log]
        finally:
            await labkit.shutdown()

    before, during, after, counts, statuses, faults = run(main())
    assert [r.status for r in before] == [200] * 6
    assert sorted(r.status for r in during) == [200] * 2 + [503] * 4
    shed = [r for r in during if r.status == 503]
    assert all(r.headers["Retry-After"] == "3" for r in shed)     # whole seconds, rounded up
    assert shed[0].data == {"error": "users is overloaded: request shed", "status": 503}
    assert [r.status for r in after] == [200] * 6
    assert counts["shed"] == 4 and counts["pass"] == 14
    assert statuses[503] == 4
    assert faults.count("shed") == 4


def test_a_bounded_queue_waits_then_sheds(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            users.faults.latency_ms = 300
            users.shedding = Shedding(max_concurrency=1, max_queue=1, max_wait_s=20)
            async with labkit.AsyncClient(users.url) as client:
                replies = await burst(client, 3)
            return replies, users.shedding.summary()
        finally:
            await labkit.shutdown()

    replies, summary = run(main())
    assert sorted(r.status for r in replies) == [200, 200, 503]   # one ran, one waited, one shed
    assert summary["shed"] == 1 and summary["in_use"] == 0 and summary["queued"] == 0


def test_an_adaptive_limiter_can_be_the_knob(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            users.shedding = Shedding(limiter=Limiter(AIMD(initial_limit=3, latency_threshold_s=5)))
            users.faults.latency_ms = 500
            async with labkit.AsyncClient(users.url) as client:
                replies = await burst(client, 8)
            return replies, users.shedding.limiter
        finally:
            await labkit.shutdown()

    replies, limiter = run(main())
    assert sorted(r.status for r in replies) == [200] * 3 + [503] * 5
    assert limiter.samples == 3 and limiter.in_use == 0


def test_a_wrong_knob_is_a_clear_500(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            users.shedding = 5
            async with labkit.AsyncClient(users.url) as client:
                return await client.get("/health")
        finally:
            await labkit.shutdown()

    reply = run(main())
    assert reply.status == 500 and "service.shedding must be a Shedding" in reply.data["error"]


@pytest.mark.parametrize("kw, match", [
    ({}, "either max_concurrency"),
    ({"max_concurrency": 2, "limiter": Limiter()}, "not both"),
    ({"max_concurrency": 0}, "max_concurrency must be"),
    ({"max_concurrency": 2, "retry_after_s": -1}, "retry_after_s"),
    ({"limiter": "aimd"}, "limiter must be"),
])
def test_bad_shedding_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        Shedding(**kw)


def test_shedding_is_off_on_a_new_service_and_importable_from_labkit():
    import labkit
    from labkit.services.http import SPECS, Service
    assert Service(SPECS["users"]).shedding is None      # before the service ever started
    assert labkit.Shedding(max_concurrency=2).limiter.limit == 2
