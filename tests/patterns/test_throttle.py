"""Client-side adaptive throttling (SRE book): the formula, the sliding window, seeded draws."""
import asyncio

import pytest

from labkit import sim
from labkit.patterns.errors import ErrorKind, ServiceError
from labkit.patterns.throttle import Throttle, Throttled, backend_refused, reject_probability


@pytest.mark.parametrize("requests, accepts, k, expected", [
    (0, 0, 2, 0.0),
    (10, 5, 2, 0.0),            # half accepted: k=2 tolerates it
    (10, 2, 2, 6 / 11),         # (10 - 4) / 11
    (100, 0, 2, 100 / 101),
    (10, 5, 1.5, 2.5 / 11),
    (10, 10, 1.0, 0.0),
])
def test_reject_probability_by_hand(requests, accepts, k, expected):
    assert reject_probability(requests, accepts, k) == pytest.approx(expected)


@pytest.mark.parametrize("args, match", [((-1, 0, 2), "requests"), ((1, -1, 2), "accepts"),
                                         ((1, 0, 0), "k must be")])
def test_reject_probability_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        reject_probability(*args)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def checks(th, n):
    throttled = 0
    for _ in range(n):
        try:
            th.check()
        except Throttled:
            throttled += 1
    return throttled


def test_window_counts_and_forgets():
    clock = Clock()
    th = Throttle(k=2, window_s=10, buckets=10, seed=1, clock=clock)
    for _ in range(4):
        th.check()                       # nothing refused yet: p = 0
        th.record(accepted=True)
    assert th.probability() == 0
    checks(th, 6)                        # locally refused or not, each counts as a request
    assert (th.requests, th.accepts) == (10, 4)
    assert th.probability() == pytest.approx((10 - 8) / 11)
    clock.t = 5.0
    checks(th, 10)
    assert th.probability() == pytest.approx((20 - 8) / 21)
    clock.t = 10.0                       # the bucket of t=0 (4 accepts, 10 requests) expires
    assert th.probability() == pytest.approx(10 / 11)
    assert (th.requests, th.accepts) == (10, 0)
    clock.t = 15.0
    assert th.probability() == 0 and th.requests == 0


def test_memory_is_bounded_by_buckets():
    clock = Clock()
    th = Throttle(window_s=5, buckets=5, seed=1, clock=clock)
    for i in range(1000):
        clock.t = i * 0.37
        checks(th, 1)
        th.record(accepted=i % 3 == 0)
        assert len(th._window) <= 5
    assert th.requests == sum(b[1] for b in th._window)


def test_a_saturated_backend_gets_about_k_times_what_it_accepts():
    """Offered 100/s, the backend accepts at most 10 per second: without the throttle it gets
    all 5000 requests; with k=2 it gets about 2x the ~500 it accepts."""
    clock = Clock()
    th = Throttle(k=2, window_s=10, buckets=10, seed=7, clock=clock)
    accepted_in = {}
    for i in range(5000):
        clock.t = i * 0.01
        try:
            th.check()
        except Throttled:
            continue
        second = int(clock.t)
        ok = accepted_in.get(second, 0) < 10
        accepted_in[second] = accepted_in.get(second, 0) + ok
        th.record(accepted=ok)
    s = th.summary()
    assert s["throttled"] + s["sent"] == 5000 == s["requests"]
    assert 450 <= s["accepts"] <= 500
    assert 1.5 * s["accepts"] < s["sent"] < 3 * s["accepts"]


def test_same_seed_same_decisions_and_instances_differ_by_default():
    def decisions(**kw):
        clock = Clock()
        th = Throttle(k=1, clock=clock, **kw)
        out = []
        for _ in range(200):
            try:
                th.check()
                out.append(1)
            except Throttled:
                out.append(0)
        return out

    assert decisions(seed=5) == decisions(seed=5)
    assert decisions(seed=5) != decisions(seed=6)
    assert decisions() != decisions()        # one stream per instance (labkit._core.seeding)


def test_backend_refused_classifies_failures():
    assert backend_refused(ServiceError(ErrorKind.UNAVAILABLE, status=503))
    assert backend_refused(ServiceError(ErrorKind.RATE_LIMIT, status=429))
    assert backend_refused(asyncio.TimeoutError())
    assert not backend_refused(ServiceError(ErrorKind.NOT_FOUND, status=404))
    assert not backend_refused(ServiceError(ErrorKind.INTERNAL, status=500))


def test_throttled_is_a_local_definite_refusal():
    err = Throttled()
    assert err.definite and not err.retryable and err.kind is ErrorKind.BREAKER_OPEN


def test_call_records_accepts_in_virtual_time():
    async def main():
        th = Throttle(k=2, window_s=10, seed=1)

        async def ok():
            await asyncio.sleep(0.1)
            return "ok"

        async def refused():
            raise ServiceError(ErrorKind.UNAVAILABLE, status=503)

        async def missing():
            raise ServiceError(ErrorKind.NOT_FOUND, status=404)

        assert await th.call(ok) == "ok"
        with pytest.raises(ServiceError):
            await th.call(missing)               # a 404 was processed: accepted
        with pytest.raises(ServiceError):
            await th.call(refused)
        return th.requests, th.accepts, asyncio.get_running_loop().time()

    assert sim.run(main) == (3, 2, pytest.approx(0.1))


def test_against_a_shedding_sim_backend_fewer_requests_reach_it():
    """A 1-worker backend (10 ms, a queue of 5) offered 400/s: the throttled client sends far fewer
    requests it would refuse, and gets as many successes."""
    async def main(throttled):
        svc = sim.SimService("backend", workers=1, queue_limit=5, latency=0.01)
        th = Throttle(k=2, window_s=5, buckets=5, name="c") if throttled else None
        ok = 0

        async def request():
            nonlocal ok
            try:
                await (th.call(svc.call) if th else svc.call())
                ok += 1
            except ServiceError:
                pass

        await sim.poisson_arrivals(400, 30, request, keep_results=False, seed=2)
        return svc.arrived, svc.rejected, ok

    plain = sim.run(lambda: main(False), seed=1)
    throttled = sim.run(lambda: main(True), seed=1)
    assert throttled[1] < 0.5 * plain[1]              # refusals at the backend
    assert throttled[2] > 0.8 * plain[2]              # successes barely change


@pytest.mark.parametrize("kw, match", [({"k": 0}, "k must be"), ({"window_s": 0}, "window_s"),
                                       ({"buckets": 0}, "buckets")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        Throttle(**kw)


def test_record_wants_a_bool():
    th = Throttle(seed=1, clock=Clock())
    with pytest.raises(ValueError, match="accepted must be True or False"):
        th.record(accepted=1)
