"""Service level objectives: error budget, budget remaining and multi-window burn-rate alerts.

Chapter 07. An SLO says "`target` of requests succeed over `window_s`" (99.9 % over 30 days).
What may fail is the *error budget*, 1 - target (0.1 % of the requests). The *burn rate* over
a window is how fast that budget goes: the window's error rate divided by 1 - target, so a
burn rate of 1 spends exactly the budget by the end of the SLO window and 14.4 spends 2 % of
a 30-day budget in one hour.

Alerting follows the Google SRE workbook ("Alerting on SLOs", multiwindow, multi-burn-rate):
an alert fires when the burn rate is above its threshold over a long window *and* over a
short one (1 h and 5 min at 14.4x; 6 h and 30 min at 6x; 3 days and 6 h at 1x). The long
window keeps a blip from paging; the short one lets the alert stop soon after the fault ends.
A course lab cannot wait an hour, so `scale_alerts` shrinks the windows by a factor.

Counts are kept in time bins (`bin_s`) in a ring covering the longest window: O(1) per
record, memory fixed by window / bin_s (at most `MAX_BINS`); a window reads the whole bins
ending with the current one. Pure: time is `now_s` or the running loop's clock, so the same
code runs in labkit.sim's virtual time.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from labkit._core import validate

__all__ = ["BurnAlert", "SLO", "WORKBOOK_ALERTS", "MAX_BINS", "scale_alerts"]

MAX_BINS = 200_000


@dataclass(frozen=True)
class BurnAlert:
    """Fire when the burn rate exceeds `burn_rate` over both `long_s` and `short_s`."""
    long_s: float
    short_s: float
    burn_rate: float
    severity: str = "page"

    def __post_init__(self):
        validate.number("long_s", self.long_s, 0, lo_open=True, unit=" s")
        validate.number("short_s", self.short_s, 0, self.long_s, lo_open=True, unit=" s")
        validate.number("burn_rate", self.burn_rate, 0, lo_open=True)
        validate.text("severity", self.severity)


# The SRE workbook's table for a 30-day SLO: budget spent when it fires = rate * long / 30 d.
WORKBOOK_ALERTS = (BurnAlert(3600.0, 300.0, 14.4, "page"),          # 2 % in 1 h
                   BurnAlert(6 * 3600.0, 1800.0, 6.0, "page"),       # 5 % in 6 h
                   BurnAlert(3 * 86400.0, 6 * 3600.0, 1.0, "ticket"))  # 10 % in 3 days


def scale_alerts(alerts, factor: float) -> tuple[BurnAlert, ...]:
    """The same alerts with every window multiplied by `factor` (e.g. 1/360: 1 h -> 10 s),
    so a notebook sees in seconds what production sees in hours. Thresholds stay."""
    factor = validate.number("factor", factor, 0, lo_open=True)
    return tuple(BurnAlert(a.long_s * factor, a.short_s * factor, a.burn_rate, a.severity)
                 for a in alerts)


class SLO:
    """`target` (0 < target < 1) of requests good over `window_s` seconds; see the module
    docstring. `alerts`: BurnAlert rules (default: the workbook's for 30 days); `bin_s`: the
    counting granularity (default: a fifth of the shortest alert window)."""

    def __init__(self, *, target: float, window_s: float, alerts=WORKBOOK_ALERTS,
                 bin_s: float | None = None):
        self.target = validate.number("target", target, 0, 1, lo_open=True, hi_open=True)
        self.window_s = validate.number("window_s", window_s, 0, lo_open=True, unit=" s")
        alerts = tuple(alerts)
        if not all(isinstance(a, BurnAlert) for a in alerts):
            raise ValueError(f"alerts must be BurnAlert rules, got {alerts!r}")
        self.alerts = alerts
        if bin_s is None:
            bin_s = min([a.short_s for a in alerts], default=self.window_s) / 5
        self.bin_s = validate.number("bin_s", bin_s, 0, lo_open=True, unit=" s")
        span = max([self.window_s, *(a.long_s for a in alerts)])
        n = math.ceil(span / self.bin_s - 1e-9)
        if n > MAX_BINS:
            raise ValueError(f"bin_s must be at least {span / MAX_BINS:g} s to keep "
                             f"{span:g} s in {MAX_BINS} bins, got {bin_s!r}")
        self._stamps = [-1] * n
        self._total = [0] * n
        self._bad = [0] * n

    @property
    def error_budget(self) -> float:
        """The share of requests allowed to fail: 1 - target."""
        return 1 - self.target

    def _now(self, now_s) -> float:
        if now_s is None:
            return asyncio.get_running_loop().time()
        return validate.number("now_s", now_s, unit=" s")

    def record(self, ok: bool, *, now_s: float | None = None, count: int = 1) -> None:
        """Count `count` (>= 0) requests that succeeded (`ok`) or failed, at `now_s` (loop time)."""
        if not isinstance(ok, bool):
            raise ValueError(f"ok must be True or False, got {ok!r}")
        if count != 1:
            count = validate.integer("count", count, 0)
        k = int(self._now(now_s) // self.bin_s)
        slot = k % len(self._stamps)
        if self._stamps[slot] != k:
            self._stamps[slot], self._total[slot], self._bad[slot] = k, 0, 0
        self._total[slot] += count
        if not ok:
            self._bad[slot] += count

    def counts(self, window_s: float, *, now_s: float | None = None) -> tuple[int, int]:
        """(requests, failed) in the `window_s` seconds up to `now_s` (whole bins)."""
        window_s = validate.number("window_s", window_s, 0, lo_open=True, unit=" s")
        k = int(self._now(now_s) // self.bin_s)
        n = len(self._stamps)
        bins = min(n, max(1, round(window_s / self.bin_s)))
        total = bad = 0
        for j in range(k - bins + 1, k + 1):
            slot = j % n
            if self._stamps[slot] == j:
                total += self._total[slot]
                bad += self._bad[slot]
        return total, bad

    def error_rate(self, window_s: float, *, now_s: float | None = None) -> float:
        """Failed / requests in the window (0.0 with no requests)."""
        total, bad = self.counts(window_s, now_s=now_s)
        return bad / total if total else 0.0

    def burn_rate(self, window_s: float, *, now_s: float | None = None) -> float:
        """How fast the window spends the budget: error rate / (1 - target)."""
        return self.error_rate(window_s, now_s=now_s) / self.error_budget

    def budget_remaining(self, *, now_s: float | None = None) -> float:
        """The share of the SLO window's error budget not yet spent: 1 - failed / (allowed
        failures), allowed = (1 - target) * requests. Negative once overspent; 1.0 with no
        requests."""
        total, bad = self.counts(self.window_s, now_s=now_s)
        return 1 - bad / (self.error_budget * total) if total else 1.0

    def alert_states(self, *, now_s: float | None = None) -> list[dict]:
        """One dict per alert rule: its windows, threshold, both burn rates and `firing`."""
        now_s = self._now(now_s)
        out = []
        for a in self.alerts:
            long_burn = self.burn_rate(a.long_s, now_s=now_s)
            short_burn = self.burn_rate(a.short_s, now_s=now_s)
            out.append({"severity": a.severity, "long_s": a.long_s, "short_s": a.short_s,
                        "threshold": a.burn_rate, "long_burn": long_burn,
                        "short_burn": short_burn,
                        "firing": long_burn > a.burn_rate and short_burn > a.burn_rate})
        return out

    def firing(self, *, now_s: float | None = None) -> list[BurnAlert]:
        """The alert rules firing now."""
        states = self.alert_states(now_s=now_s)
        return [a for a, s in zip(self.alerts, states) if s["firing"]]

    def summary(self, *, now_s: float | None = None) -> dict:
        now_s = self._now(now_s)
        total, bad = self.counts(self.window_s, now_s=now_s)
        return {"target": self.target, "window_s": self.window_s, "requests": total,
                "failed": bad, "budget_remaining": self.budget_remaining(now_s=now_s),
                "firing": [a.severity for a in self.firing(now_s=now_s)]}

    def __repr__(self):
        return f"<SLO target={self.target:g} window_s={self.window_s:g} bin_s={self.bin_s:g}>"
