"""An SLO's burn rate on a live service while a fault is injected (chapter 07).

`burn_rate_under_fault` sends steady traffic to a labkit service, counts every answer against
an SLO (labkit.obs.slo) and turns the service's fault knobs on for the middle phase (calm,
fault, calm again; knobs reset in `finally`). It samples the burn rates and which alerts fire,
and returns the budget left at the end. The SRE workbook's windows are hours, so they are
scaled down (1 h of the workbook is `hour_s` seconds here, 2 s by default) and the SLO window
shrinks with them: what a pager sees in an afternoon, a notebook shows in five seconds. The
SLO window before the lab is filled with calm traffic at the same rate, as if the service had
been healthy all month, so the budget left says what share of a month's budget the incident
spent.

What counts: a request fails when its answer is an error (`labkit.obs.red.is_error`) or
never comes (`timeout_s`); a request the load generator could not send because
`max_in_flight` earlier ones were still waiting fails too (its user got no answer either),
so a slow service cannot shrink the denominator. Failures are counted when they happen,
which for a timeout is `timeout_s` after the request left: a latency fault pages late and
keeps paging after it ends, so the page is looked for in the fault *and* after it.

The short window is short: a scaled 5 minutes (`hour_s` / 12) holds rate_per_s * hour_s / 12
requests (a few dozen in chapter 7), so a few errors more or less move its burn rate by
several x and the page can switch off and on while the fault lasts; `page_starts` counts how
often it switched on. Times are read from samples `sample_every_s` apart, so they are that
coarse. The load generator shares the event loop with whatever else runs in the process: the
requests due while the loop was held up leave together when it runs again, so keep
`max_in_flight` well above rate_per_s times a few tenths of a second, or a busy machine shows
as unsent requests (failures the service never caused).
"""
from __future__ import annotations

import asyncio

import aiohttp

from labkit._core import runtime, validate
from labkit.obs.red import is_error
from labkit.obs.slo import SLO, WORKBOOK_ALERTS, scale_alerts

__all__ = ["burn_rate_under_fault"]


def _calm_history(slo: SLO, t0: float, rate_per_s: float, recent_s: float) -> None:
    """Fill the SLO window before `t0` with good requests at `rate_per_s`: every bin of the
    last `recent_s` (the alert windows read them), one record per second before that."""
    per_bin = rate_per_s * slo.bin_s
    bins = round(recent_s / slo.bin_s)
    for i in range(1, bins + 1):
        slo.record(True, now_s=t0 - (i - 0.5) * slo.bin_s,
                   count=round(i * per_bin) - round((i - 1) * per_bin))
    for back_s in range(int(recent_s) + 1, int(slo.window_s) + 1):
        slo.record(True, now_s=t0 - back_s + 0.5, count=round(rate_per_s))


async def burn_rate_under_fault(service, *, faults: dict | None = None, target: float = 0.99,
                                rate_per_s: float = 200.0, calm_s: float = 1.5,
                                fault_s: float = 2.0, after_s: float = 1.5,
                                hour_s: float = 2.0, sample_every_s: float = 0.02,
                                max_in_flight: int = 50, timeout_s: float = 2.0) -> dict:
    """GET `service`/health `rate_per_s` times a second for calm_s + fault_s + after_s seconds
    with `faults` (service.faults knobs, default error_rate=0.3) on during fault_s.

    Returns {"timeline": [{"t_s", "phase", "fast_long_burn", "fast_short_burn", "firing"}]
    (t_s: seconds since the lab started), "alerts": the scaled rules, "fault_start_s" /
    "fault_end_s": when the knobs were set and reset (seconds since the lab started; the first
    fault sample comes up to `sample_every_s` later), "first_page_s": seconds from the fault's
    start to the first page, during the fault or after it (None if no page fired),
    "page_cleared_s": seconds from the fault's end to the first sample after the last page
    (None if no page fired or it still fired at the end; negative if it stopped before the
    fault ended), "page_starts": how many times the page switched on from the fault's start
    (more than 1: it flickered), "still_paging": the last sample's page state, "requests":
    every request due (sent or not), "failed": error answers, timeouts and unsent requests, "skipped": the
    unsent ones: requests due while `max_in_flight` were outstanding are not queued but
    counted as failed (see the module docstring)."""
    faults = {"error_rate": 0.3} if faults is None else dict(faults)
    rate_per_s = validate.number("rate_per_s", rate_per_s, 0, 1000, lo_open=True, unit=" /s")
    phases = [("calm", validate.number("calm_s", calm_s, 0, 30, unit=" s")),
              ("fault", validate.number("fault_s", fault_s, 0, 30, lo_open=True, unit=" s")),
              ("after", validate.number("after_s", after_s, 0, 30, unit=" s"))]
    hour_s = validate.number("hour_s", hour_s, 0.1, 3600, unit=" s")
    sample_every_s = validate.number("sample_every_s", sample_every_s, 0.01, 10, unit=" s")
    max_in_flight = validate.integer("max_in_flight", max_in_flight, 1, 1000)
    timeout_s = validate.number("timeout_s", timeout_s, 0, 60, lo_open=True, unit=" s")
    alerts = scale_alerts(WORKBOOK_ALERTS, hour_s / 3600)
    slo = SLO(target=target, window_s=30 * 24 * hour_s, alerts=alerts,
              bin_s=alerts[0].short_s / 5)
    service.faults.set()                               # validates that it is a service
    loop = asyncio.get_running_loop()
    url = service.url + "/health"
    session = runtime.session(timeout=aiohttp.ClientTimeout(total=timeout_s))
    tasks: set[asyncio.Task] = set()
    counts = {"requests": 0, "failed": 0, "skipped": 0}
    timeline: list[dict] = []

    async def one():
        try:
            async with session.get(url) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status = 0                                 # no answer counts against the SLO
        failed = is_error(status)
        slo.record(not failed)
        counts["requests"] += 1
        counts["failed"] += failed

    t0 = loop.time()
    _calm_history(slo, t0, rate_per_s, recent_s=max(a.long_s for a in alerts))
    marks = {}
    try:
        next_send = next_sample = t0
        for phase, length_s in phases:
            marks[phase] = loop.time() - t0
            if phase == "fault":
                service.faults.set(**faults)
            elif phase == "after":
                service.faults.reset()
            end = loop.time() + length_s
            while loop.time() < end:
                now = loop.time()
                while next_send <= now:
                    next_send += 1 / rate_per_s
                    if len(tasks) >= max_in_flight:
                        slo.record(False)      # no answer for its user: a failure
                        counts["requests"] += 1
                        counts["failed"] += 1
                        counts["skipped"] += 1
                        continue
                    task = asyncio.ensure_future(one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if now >= next_sample:
                    next_sample += sample_every_s
                    states = slo.alert_states(now_s=now)
                    timeline.append({"t_s": now - t0, "phase": phase,
                                     "fast_long_burn": states[0]["long_burn"],
                                     "fast_short_burn": states[0]["short_burn"],
                                     "firing": [s["severity"] for s in states if s["firing"]]})
                await asyncio.sleep(min(next_send, next_sample, end) - loop.time())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 1)
    finally:
        service.faults.reset()
        for task in tasks:
            task.cancel()
        await session.close()
    fault_at, after_at = marks["fault"], marks["after"]
    since_fault = [r for r in timeline if r["phase"] != "calm"]
    paging = [i for i, r in enumerate(since_fault) if "page" in r["firing"]]
    still_paging = bool(paging) and paging[-1] == len(since_fault) - 1
    cleared = None
    if paging and not still_paging:
        cleared = since_fault[paging[-1] + 1]["t_s"] - after_at
    starts = sum(1 for i in paging if i == 0 or "page" not in since_fault[i - 1]["firing"])
    return {"timeline": timeline, "alerts": alerts, "target": target,
            "fault_start_s": fault_at, "fault_end_s": after_at,
            "first_page_s": since_fault[paging[0]]["t_s"] - fault_at if paging else None,
            "page_cleared_s": cleared, "page_starts": starts, "still_paging": still_paging,
            "budget_remaining": slo.budget_remaining(), **counts}
