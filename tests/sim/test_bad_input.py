"""Bad arguments to the simulator fail at once with a ValueError that names the argument,
instead of being accepted and then hanging or misleading (issue 7, section 2)."""
import asyncio
import math
import threading

import pytest

from labkit import sim

NAN, INF = float("nan"), float("inf")


def _finishes(fn, timeout_s=60.0):
    """Run fn() in a daemon thread; return (finished, exception). A hang shows as not finished."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive(), box.get("error")


@pytest.mark.parametrize("kwargs,needle", [
    ({"latency": NAN}, "latency"),
    ({"latency": INF}, "latency"),
    ({"latency": -0.1}, "latency"),
    ({"latency": "0.1"}, "latency"),
    ({"latency": True}, "latency"),
    ({"workers": 2.0}, "workers"),
    ({"workers": True}, "workers"),
    ({"workers": 0}, "workers"),
    ({"queue_limit": 1.5}, "queue_limit"),
    ({"queue_limit": True}, "queue_limit"),
    ({"queue_limit": -1}, "queue_limit"),
    ({"error_rate": NAN}, "error_rate"),
    ({"error_rate": 1.5}, "error_rate"),
    ({"error_rate": True}, "error_rate"),
    ({"record": "yes"}, "record"),
])
def test_sim_service_refuses_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle) as info:
        sim.SimService("x", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)  # says what it got


@pytest.mark.parametrize("make,needle", [
    (lambda: sim.Fixed(NAN), "value_s"),
    (lambda: sim.Fixed(-1.0), "value_s"),
    (lambda: sim.Fixed(INF), "value_s"),
    (lambda: sim.Exponential(INF), "mean_s"),
    (lambda: sim.Exponential(NAN), "mean_s"),
    (lambda: sim.Exponential(0.0), "mean_s"),
    (lambda: sim.Exponential("1"), "mean_s"),
    (lambda: sim.Exponential(10 ** 400), "mean_s"),
    (lambda: sim.LogNormal(NAN, 1.0), "mu"),
    (lambda: sim.LogNormal(0.0, -1.0), "sigma"),
    (lambda: sim.LogNormal(0.0, INF), "sigma"),
    (lambda: sim.LogNormal.from_p50_p99(NAN, 0.1), "p50_s"),
    (lambda: sim.LogNormal.from_p50_p99(0.01, INF), "p99_s"),
    (lambda: sim.LogNormal.from_p50_p99(0.01, 0.005), "p99_s"),
])
def test_latency_distributions_refuse_bad_parameters(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_exponential_mean_is_kept_as_a_float():
    assert sim.Exponential(2).mean_s == 2.0 and isinstance(sim.Exponential(2).mean_s, float)


async def _noop():
    return None


@pytest.mark.parametrize("rate,duration,needle", [
    (INF, 1.0, "rate_per_s"),
    (NAN, 1.0, "rate_per_s"),
    (0.0, 1.0, "rate_per_s"),
    (True, 1.0, "rate_per_s"),
    (10.0, INF, "duration_s"),
    (10.0, NAN, "duration_s"),
    (10.0, -1.0, "duration_s"),
])
def test_poisson_arrivals_refuses_rates_that_would_hang(rate, duration, needle):
    async def main():
        return await sim.poisson_arrivals(rate, duration, _noop)

    finished, error = _finishes(lambda: sim.run(main))
    assert finished, f"poisson_arrivals(rate_per_s={rate}, duration_s={duration}) hung"
    assert isinstance(error, ValueError) and needle in str(error), error


@pytest.mark.parametrize("timeout_s", [NAN, -1.0, INF, "1"])
def test_a_call_with_a_bad_timeout_fails_at_once(timeout_s):
    async def main():
        svc = sim.SimService("api", latency=0.01)
        with pytest.raises(ValueError, match="timeout_s"):
            svc.submit(timeout_s)
        return svc.arrived

    finished, error = _finishes(lambda: sim.run(main))
    assert finished and error is None, error


@pytest.mark.parametrize("every_s", [0, NAN, INF, -1.0, "1"])
def test_monitor_refuses_bad_intervals(every_s):
    async def main():
        svc = sim.SimService("api")
        with pytest.raises(ValueError, match="every_s"):
            sim.Monitor([svc], every_s=every_s)

    sim.run(main)


@pytest.mark.parametrize("kwargs,needle", [
    ({"until_s": NAN}, "until_s"),
    ({"until_s": INF}, "until_s"),
    ({"until_s": -1}, "until_s"),
    ({"seed": "0"}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"progress": "yes"}, "progress"),
])
def test_run_refuses_bad_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        sim.run(_noop, **kwargs)


def test_a_timer_at_nan_is_refused_by_the_loop():
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match="when"):
            loop.call_at(NAN, lambda: None)
        with pytest.raises(ValueError, match="delay"):
            loop.call_later(NAN, lambda: None)
        return math.isfinite(loop.time())

    assert sim.run(main)
