"""labkit/labs/slo_lab.py (chapter 07): an SLO's burn rate on a live service while a fault is
injected. It pages during an error fault and resets the knobs; a latency fault pages when its
timeouts land, after the fault; requests it could not send count against the SLO; "the
page cleared" is only said of a page that fired; the fault's marks are when the knobs changed
(not the next sample), and `page_starts` counts each time the page switched on. Real sockets,
so the faults are chosen to make the outcome certain (a 3 s delay against a sub-second
timeout), never a timing assert."""
import labkit
from labkit.labs import slo_lab


def _lab(run, *, seed=3, **kwargs):
    async def main():
        users = await labkit.start_service("users", seed=seed)
        try:
            return users, await slo_lab.burn_rate_under_fault(users, hour_s=1.0, **kwargs)
        finally:
            await labkit.shutdown()
    return run(main())


def test_the_slo_lab_pages_during_the_fault_and_resets_the_knobs(run):
    users, r = _lab(run, faults={"error_rate": 0.5}, rate_per_s=100, calm_s=0.3, fault_s=1.5,
                    after_s=0.6, timeout_s=5.0)
    assert users.faults.all_off
    calm = [x for x in r["timeline"] if x["phase"] == "calm"]
    assert calm and all(x["fast_long_burn"] == 0 and not x["firing"] for x in calm)
    assert r["first_page_s"] is not None           # 50 % errors vs a 1 % budget: 50x > 14.4x
    peak = max(x["fast_short_burn"] for x in r["timeline"])
    assert peak > 14.4
    assert r["failed"] > 0 and 0 < r["budget_remaining"] < 1
    if not r["still_paging"]:
        assert r["page_cleared_s"] is not None


def test_a_latency_fault_pages_when_its_timeouts_land_after_the_fault(run):
    # every request of the fault waits 3 s and times out after 0.5 s; the fault lasts 0.5 s,
    # so its failures land after it (no request is left unsent: max_in_flight is ample)
    users, r = _lab(run, faults={"latency_ms": 3000}, rate_per_s=100, calm_s=0.1, fault_s=0.5,
                    after_s=1.0, timeout_s=0.5, max_in_flight=1000)
    assert users.faults.all_off and r["skipped"] == 0
    assert all(not x["firing"] for x in r["timeline"] if x["phase"] == "fault")
    assert any("page" in x["firing"] for x in r["timeline"] if x["phase"] == "after")
    assert r["first_page_s"] is not None and r["first_page_s"] >= 0.45   # not before a timeout


def test_requests_it_could_not_send_count_as_failed(run):
    users, r = _lab(run, faults={"latency_ms": 3000}, rate_per_s=100, calm_s=0.1, fault_s=0.5,
                    after_s=0.3, timeout_s=0.8, max_in_flight=5)
    assert r["skipped"] > 0
    assert r["failed"] >= r["skipped"] + 5          # the 5 stuck requests time out too
    assert r["requests"] >= r["failed"]
    assert r["budget_remaining"] < 1


def test_no_page_no_page_cleared(run):
    users, r = _lab(run, faults={"error_rate": 0.0}, rate_per_s=100, calm_s=0.1, fault_s=0.3,
                    after_s=0.3, timeout_s=5.0)
    assert r["first_page_s"] is None
    assert r["page_cleared_s"] is None and not r["still_paging"]


def test_the_fault_marks_are_when_the_knobs_changed_and_page_starts_counts_each_switch_on(run):
    # samples 0.3 s apart, fault from ~0.1 s: the first fault sample comes well after the knobs
    # were set, so a mark taken from the samples (what the chart used to shade) would be late
    users, r = _lab(run, faults={"error_rate": 0.6}, rate_per_s=100, calm_s=0.1, fault_s=1.0,
                    after_s=0.4, timeout_s=5.0, sample_every_s=0.3)
    tl = r["timeline"]
    assert all(set(x) == {"t_s", "phase", "fast_long_burn", "fast_short_burn", "firing"}
               for x in tl)
    fault_t = [x["t_s"] for x in tl if x["phase"] == "fault"]
    assert r["fault_start_s"] >= 0.1 and r["fault_end_s"] - r["fault_start_s"] >= 1.0
    assert r["fault_start_s"] < fault_t[0] and fault_t[-1] < r["fault_end_s"]
    assert all(x["t_s"] < r["fault_start_s"] for x in tl if x["phase"] == "calm")
    assert all(x["t_s"] >= r["fault_end_s"] for x in tl if x["phase"] == "after")
    since = [("page" in x["firing"]) for x in tl if x["phase"] != "calm"]
    switches = sum(on and (i == 0 or not since[i - 1]) for i, on in enumerate(since))
    assert r["first_page_s"] is not None           # 60 % errors: 60x > 14.4x, long window fills
    assert r["page_starts"] == switches >= 1

