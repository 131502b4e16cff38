"""labkit/obs/slo.py (chapter 07): error budget, budget remaining and multi-window burn-rate
alerts on hand-computed cases, and the same code on the loop clock in virtual time."""
import asyncio

import pytest

from labkit import sim
from labkit.obs.slo import SLO, WORKBOOK_ALERTS, BurnAlert, scale_alerts


def slo_99(**kw):
    # 99 % over 100 s; page at 10x over 10 s and 2 s; 1-second bins
    return SLO(target=0.99, window_s=100, alerts=[BurnAlert(10, 2, 10.0, "page")], bin_s=1, **kw)


def test_burn_rate_is_the_error_rate_over_the_budget():
    slo = slo_99()
    assert slo.error_budget == pytest.approx(0.01)
    for t in range(10):                                 # t = 0..9: 100 requests a second
        slo.record(True, now_s=t + 0.5, count=98)
        slo.record(False, now_s=t + 0.5, count=2)
    # last 10 s: 1000 requests, 20 failed -> 2 % errors / 1 % budget = burn rate 2
    assert slo.counts(10, now_s=9.9) == (1000, 20)
    assert slo.burn_rate(10, now_s=9.9) == pytest.approx(2.0)
    # the whole 100 s window: 20 failed of 1000 allowed 10 -> budget overspent twice: -1
    assert slo.budget_remaining(now_s=9.9) == pytest.approx(-1.0)


def test_budget_remaining_counts_only_the_slo_window():
    slo = slo_99()
    slo.record(True, now_s=0.5, count=1000)
    slo.record(False, now_s=0.5, count=5)             # 5 of the 10.05 allowed
    assert slo.budget_remaining(now_s=50) == pytest.approx(1 - 5 / (0.01 * 1005))
    assert slo.budget_remaining(now_s=100.5) == 1.0     # the bin at t=0 left the window
    assert SLO(target=0.999, window_s=60, alerts=[]).budget_remaining(now_s=0) == 1.0


def test_an_alert_needs_both_windows_above_the_threshold():
    slo = slo_99()
    for t in range(10):                                 # t = 0..7 bad (20 %), t = 8, 9 clean
        bad = 20 if t < 8 else 0
        slo.record(True, now_s=t + 0.5, count=100 - bad)
        slo.record(False, now_s=t + 0.5, count=bad)
    state = slo.alert_states(now_s=9.5)[0]
    # long 10 s: 160 / 1000 = 16 % -> 16x; short 2 s (t = 8, 9): 0 -> 0x: the fault is over
    assert state["long_burn"] == pytest.approx(16.0) and state["short_burn"] == 0.0
    assert not state["firing"] and slo.firing(now_s=9.5) == []
    # at t = 7.5 both windows burn: long (t = 0..7) 160/800 = 20x, short (t = 6, 7) 20x
    assert slo.alert_states(now_s=7.5)[0]["long_burn"] == pytest.approx(20.0)
    assert [a.severity for a in slo.firing(now_s=7.5)] == ["page"]
    assert slo.summary(now_s=7.5)["firing"] == ["page"]


def test_the_workbook_thresholds_spend_the_budget_they_claim():
    month = 30 * 86400
    spent = [a.burn_rate * a.long_s / month for a in WORKBOOK_ALERTS]
    assert spent == pytest.approx([0.02, 0.05, 0.10])
    fast = scale_alerts(WORKBOOK_ALERTS, 1 / 360)[0]
    assert (fast.long_s, fast.short_s, fast.burn_rate) == pytest.approx((10.0, 300 / 360, 14.4))


def test_time_comes_from_the_running_loop_in_virtual_time():
    async def main():
        slo = SLO(target=0.9, window_s=60, alerts=scale_alerts(WORKBOOK_ALERTS, 1 / 360),
                  bin_s=0.1)
        for i in range(200):                            # 20 s at 10 requests/s, half failing
            slo.record(i % 2 == 0)                      # from t = 10 s on
            await asyncio.sleep(0.1)
        return slo.alert_states(), slo.budget_remaining()

    states, remaining = sim.run(main)
    # 50 % errors / 10 % budget = 5x everywhere: above the 1x ticket rule only
    assert [s["firing"] for s in states] == [False, False, True]
    assert states[0]["long_burn"] == pytest.approx(5.0, abs=0.6)
    assert remaining == pytest.approx(1 - 0.5 / 0.1, abs=0.3)


def test_memory_is_bounded_and_bad_arguments_are_named():
    with pytest.raises(ValueError, match="bin_s"):
        SLO(target=0.99, window_s=30 * 86400, bin_s=0.001)
    with pytest.raises(ValueError, match="target"):
        SLO(target=1.0, window_s=60)
    with pytest.raises(ValueError, match="short_s"):
        BurnAlert(10, 20, 14.4)
    with pytest.raises(ValueError, match="ok"):
        slo_99().record(1, now_s=0)
    slo = SLO(target=0.999, window_s=30 * 86400)       # the default bins: 60 s
    assert slo.bin_s == 60 and len(slo._stamps) == 30 * 86400 // 60
