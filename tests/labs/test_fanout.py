"""Fan-out tail latency (chapter 1): a page of N calls is slow when at least one of its calls
was slowed down by the backend, so the share of slow pages is 1 - (1 - p)^N, whatever the CPU
load; the measured page times show what that costs."""
import base64
import math

import pytest

import labkit
from labkit.labs import fanout
from labkit.labs.fanout import fanout_lab, measure_fanout, predicted_share


async def _measure(*args, **kwargs):
    try:
        return await measure_fanout(*args, **kwargs)
    finally:
        await labkit.shutdown()


@pytest.mark.parametrize("n,pages", [(1, 150), (10, 150), (60, 100)])
def test_no_slow_calls_no_slow_pages_for_every_n_the_widget_allows(run, n, pages):
    # Before: a page counted as slow when it took >= 20 ms, which 60 concurrent fast calls
    # take on a busy 2-core machine (99 % "slow" pages at p = 0).
    r = run(_measure(n, 0.0, pages=pages), timeout_s=300)
    assert r["slow_pages"] == 0 and r["share_slow"] == 0.0, r
    assert r["slow_calls"] == 0 and r["calls"] == n * pages
    assert r["predicted"] == 0.0


def test_share_of_slow_pages_matches_the_formula(run):
    p, n, pages = 0.05, 20, 200
    r = run(_measure(n, p, pages=pages), timeout_s=300)
    q = predicted_share(p, n)                       # 0.64
    sd = math.sqrt(q * (1 - q) / pages)             # 0.034 (binomial)
    assert abs(r["share_slow"] - q) <= 4 * sd, r
    # The calls themselves were slowed at rate p (binomial over 4000 calls, sd 0.0034).
    assert abs(r["call_share_slow"] - p) <= 4 * math.sqrt(p * (1 - p) / (n * pages)), r


def test_page_times_of_both_classes_are_reported_honestly(run):
    slow_ms = 100.0
    r = run(_measure(10, 0.1, pages=60, slow_ms=slow_ms), timeout_s=300)
    assert 0 < r["slow_pages"] < 60
    # A slow page waited for a call the server held for slow_ms: it cannot take less.
    assert r["slow_page_min_ms"] >= slow_ms
    assert r["slow_page_p50_ms"] >= slow_ms
    # Fast pages are well below: their calls were not delayed at all.
    assert r["fast_page_p50_ms"] < slow_ms / 2
    assert r["page_p50_ms"] > 0 and r["page_p99_ms"] >= r["page_p50_ms"]


def test_faults_are_restored_and_the_backend_is_reused(run):
    async def main():
        backend = await fanout.backend()
        backend.faults.set(latency_ms=5.0)
        before = backend.faults.summary()
        await measure_fanout(3, 0.5, pages=5, service=backend)
        again = await fanout.backend()
        return before, backend.faults.summary(), again is backend

    async def measured():
        try:
            return await main()
        finally:
            await labkit.shutdown()

    before, after, same = run(measured(), timeout_s=120)
    assert before == after and same


@pytest.mark.parametrize("args,kwargs,needle", [
    ((0, 0.1), {}, "n_calls"), ((201, 0.1), {}, "n_calls"), ((10.0, 0.1), {}, "n_calls"),
    ((True, 0.1), {}, "n_calls"), ((10, float("nan")), {}, "p_slow"), ((10, 1.5), {}, "p_slow"),
    ((10, True), {}, "p_slow"), ((10, 0.1), {"pages": 0}, "pages"),
    ((10, 0.1), {"pages": 10.0}, "pages"), ((10, 0.1), {"slow_ms": float("nan")}, "slow_ms"),
    ((10, 0.1), {"slow_ms": 0.0}, "slow_ms"), ((10, 0.1), {"service": "users"}, "service"),
])
def test_bad_arguments_fail_at_once(run, args, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        run(_measure(*args, **kwargs))


def test_lab_slider_move_measures_and_draws(run):
    async def main():
        lab = fanout_lab(pages=20)
        lab.n.value = 5                          # what a slider move does
        assert "measuring" in lab.status.value
        result = await lab.wait(timeout_s=120)
        return lab, result

    async def measured():
        try:
            return await main()
        finally:
            await labkit.shutdown()

    lab, result = run(measured(), timeout_s=180)
    assert result["n_calls"] == 5 and lab.results == [result]
    png = base64.b64decode(lab.chart.outputs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "predicted" in lab.status.value


def test_lab_bad_pages():
    with pytest.raises(ValueError, match="pages"):
        fanout_lab(pages=0)


def test_predicted_share():
    assert predicted_share(0.01, 100) == pytest.approx(1 - 0.99 ** 100)
    assert predicted_share(0.0, 60) == 0.0 and predicted_share(1.0, 1) == 1.0


def test_a_page_is_classified_by_the_servers_decision_not_by_time():
    from types import SimpleNamespace as Served
    log = [Served(request_id="other", duration_s=0.5, delay_s=0.0),
           Served(request_id="a", duration_s=0.045, delay_s=0.0),    # stalled, not delayed
           Served(request_id="b", duration_s=0.030, delay_s=0.030)]
    assert fanout._delayed(log, {"a", "b"}) == {"a": False, "b": True}
