"""Deadline propagation: header codec, remaining time, callee stops work that is too late."""
import asyncio

import pytest

from labkit import sim
from labkit.patterns.deadline import (HEADER, Deadline, DeadlineExceeded, decode_remaining_ms,
                             encode_remaining_ms, within)
from labkit.patterns.errors import ErrorKind, classify


def test_header_codec():
    assert Deadline.after(1.0, now=0.0).to_headers(now=0.25) == {HEADER: "750"}
    assert encode_remaining_ms(1.2345) == "1234"  # rounded down: never promise time we lack
    assert encode_remaining_ms(-3) == "0"
    assert decode_remaining_ms(" 250 ") == 0.25
    with pytest.raises(ValueError, match="remaining_s"):
        encode_remaining_ms(float("nan"))


def test_decode_accepts_signed_whole_ms_and_refuses_the_rest():
    """One parser for the service and the pattern: a negative value means already expired."""
    assert decode_remaining_ms("0") == 0.0
    assert decode_remaining_ms("-5") == -0.005
    assert decode_remaining_ms("+40") == 0.04
    for bad in ("abc", "", " ", "1e3", "nan", "inf", "1.5", "--5", "5-", "١٢", "0x10", None, "9" * 400):
        with pytest.raises(ValueError, match=f"{HEADER} must be a whole number of milliseconds"):
            decode_remaining_ms(bad)
    # An expired header rebuilds a deadline that has already passed.
    assert Deadline.from_headers({HEADER: "-250"}, now=10.0).expired(now=10.0)
    assert Deadline.from_headers({HEADER: "0"}, now=10.0).expired(now=10.0)
    with pytest.raises(ValueError, match=HEADER):
        Deadline.from_headers({HEADER: "1e3"}, now=0.0)


@pytest.mark.parametrize("call, name", [
    (lambda: Deadline.after(float("inf"), now=0), "timeout_s"),
    (lambda: Deadline.after(10**400, now=0), "timeout_s"),
    (lambda: Deadline(1.0).shrink(-1), "margin_s"),
    (lambda: Deadline(1.0).shrink("1"), "margin_s"),
    (lambda: encode_remaining_ms(10**400), "remaining_s"),
    (lambda: Deadline.from_headers({}, now=0, default_s=-1), "default_s"),
])
def test_bad_arguments_get_a_clear_value_error(call, name):
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        call()


def test_deadline_arithmetic_and_headers():
    d = Deadline.after(2.0, now=10.0)
    assert d.at == 12.0 and d.remaining_s(now=11.5) == 0.5 and d.remaining_s(now=13) == 0.0
    assert not d.expired(now=11.9) and d.expired(now=12.0)
    headers = d.to_headers(now=11.0)
    assert headers == {HEADER: "1000"}
    # The callee's clock differs: the header is relative, so it rebuilds its own deadline.
    callee = Deadline.from_headers({HEADER.lower(): headers[HEADER]}, now=500.0)
    assert callee.at == 501.0
    assert Deadline.from_headers({}, now=0.0) is None
    assert Deadline.from_headers({}, now=0.0, default_s=3).at == 3.0
    assert d.shrink(0.5).at == 11.5 and d.earliest(Deadline(5.0)).at == 5.0
    with pytest.raises(ValueError, match="timeout_s"):
        Deadline.after(-1, now=0)


def test_callee_stops_at_the_deadline():
    steps = []

    async def work():
        for i in range(10):
            await asyncio.sleep(1)
            steps.append(i)
        return "done"

    async def main():
        d = Deadline.after(3.5)
        with pytest.raises(DeadlineExceeded) as info:
            await d.run(work)
        return asyncio.get_running_loop().time(), info.value

    t, exc = sim.run(main)
    assert t == 3.5 and steps == [0, 1, 2]
    assert classify(exc=exc) is ErrorKind.TIMEOUT and exc.status == 504


def test_expired_deadline_never_starts_work():
    started = []

    async def work():
        started.append(1)

    async def main():
        d = Deadline.after(1.0)
        await asyncio.sleep(2)
        with pytest.raises(DeadlineExceeded):
            await within(d, work)
        with pytest.raises(DeadlineExceeded):
            d.check()
        return await within(None, asyncio.sleep, 0, "no deadline")

    assert sim.run(main) == "no deadline" and started == []


def test_inner_timeout_is_not_mistaken_for_the_deadline():
    async def work():
        raise TimeoutError("downstream timed out")

    async def main():
        with pytest.raises(TimeoutError) as info:
            await Deadline.after(10).run(work)
        return info.value

    exc = sim.run(main)
    assert not isinstance(exc, DeadlineExceeded)


def test_propagated_deadline_lets_the_server_skip_abandoned_work():
    """Without a deadline the server still serves requests whose callers left; with one it drops them."""
    def served(propagate):
        async def main():
            svc = sim.SimService("slow", workers=1, latency=1.0)

            async def client():
                d = Deadline.after(1.5)
                try:
                    await svc.call(1.5, deadline=d if propagate else None)
                except Exception:
                    pass

            await asyncio.gather(*(client() for _ in range(5)))
            await asyncio.sleep(10)  # let the server drain
            return svc.summary()
        return sim.run(main)

    plain, propagated = served(False), served(True)
    assert plain["completed"] == 5 and plain["dropped"] == 0 and plain["delivered_ok"] == 1
    assert propagated["completed"] == 2 and propagated["dropped"] == 3
    assert propagated["busy_time_s"] == 2.0 < plain["busy_time_s"] == 5.0
