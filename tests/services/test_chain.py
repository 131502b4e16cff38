"""Deadline propagation across two real services (labkit/propagation.py): without it the
downstream keeps working for a caller that gave up; with it the whole chain stops in time."""
import pytest

import labkit
from labkit.services.chain import call_with_deadline, deadline_demo, start_chain, worked_after


async def _downstream(latency_ms):
    svc = await labkit.start_service("inventory")
    svc.faults.latency_ms = latency_ms
    return svc


# Bounds below hold with both CPUs busy: a loaded machine only makes things later, so each
# check is a lower bound, or an upper bound with the slack a busy machine needs.

def test_without_propagation_the_downstream_works_on_after_the_user_left(run):
    async def main():
        down = await _downstream(2000)
        try:
            return await deadline_demo(down, propagate=False, user_timeout_s=0.4, work_s=0.1)
        finally:
            await labkit.shutdown()

    r = run(main())
    assert r["user"]["status"] == "timeout" and 0.38 <= r["user"]["waited_s"] < 1.5
    assert r["front"]["received_ms"] in (399, 400) and r["front"]["sent_ms"] is None
    [served] = r["downstream"]
    assert served["status"] == 200 and served["fault"] == "pass"
    assert served["finished_at_s"] >= 2.05                      # 0.1 s work + 2 s latency
    assert r["downstream_worked_after_user_left_s"] >= 0.5     # ~1.7 s on an idle machine


def test_with_propagation_the_downstream_abandons_the_work_at_the_deadline(run):
    async def main():
        down = await _downstream(5000)
        try:
            return await deadline_demo(down, propagate=True, user_timeout_s=2.0, work_s=0.1,
                                       margin_s=0.5)
        finally:
            await labkit.shutdown()

    r = run(main())
    # The front passed what was left (2.0 - 0.1 of work - 0.5 margin = 1.4 s, less on a busy
    # machine), the downstream gave up at that point with 504 instead of working 5 s, and the
    # user got that answer before its own timeout.
    sent_s = r["front"]["sent_ms"] / 1000
    assert 0.5 < sent_s <= 1.4
    [served] = r["downstream"]
    assert served["status"] == 504 and served["fault"] == "deadline"
    assert served["finished_at_s"] - served["started_at_s"] < sent_s + 0.3
    assert r["user"]["status"] == 504 and r["user"]["waited_s"] < 2.0
    assert r["front"]["downstream"] == "504" and r["downstream_worked_after_user_left_s"] == 0


def test_no_time_left_means_no_downstream_call(run):
    async def main():
        down = await _downstream(800)
        try:
            return await deadline_demo(down, propagate=True, user_timeout_s=0.1, work_s=0.2)
        finally:
            await labkit.shutdown()

    r = run(main())
    assert r["downstream"] == [] and r["front"]["downstream"] == "not called"
    assert r["front"]["answered"] == 504 and r["user"]["status"] == "timeout"


def test_chain_pieces(run):
    async def main():
        down = await _downstream(0)
        chain = await start_chain(down, propagate=True, work_s=0.0)
        again = await start_chain(down, propagate=True, work_s=0.0)   # a re-run cell rebuilds
        reply = await again.call(2.0)
        direct = await call_with_deadline(down.url + "/health", 1.0)
        await again.settle()
        summary = again.summary()
        after = worked_after(down, 0.0)
        with pytest.raises(ValueError, match="timeout_s"):
            await call_with_deadline(down.url, 0)
        with pytest.raises(ValueError, match="running labkit service"):
            await start_chain(object(), propagate=True)
        await labkit.shutdown()
        return chain, reply, direct, summary, after, list(down.log)

    chain, reply, direct, summary, after, log = run(main())
    assert reply["status"] == 200 and direct["status"] == 200
    assert summary["hops"][0]["received_ms"] in (1999, 2000) and 1000 < summary["hops"][0]["sent_ms"] <= 1950
    assert len(log) == 2 and after > 0
