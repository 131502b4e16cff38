"""Queueing formulas (chapter 06): hand-computed values, Erlang C against its closed form in
exact arithmetic, the special cases that tie the models together, and clear errors at ρ >= 1."""
import math
from fractions import Fraction

import pytest

from labkit.sim import formulas as f

MM1 = {"arrival_rate_per_s": 8.0, "service_mean_s": 0.1}  # rho = 0.8, mu - lambda = 2/s


def test_mm1_by_hand():
    assert f.utilisation(**MM1) == pytest.approx(0.8)
    assert f.mm1_response_mean_s(**MM1) == pytest.approx(0.5)        # S/(1-rho) = 5 S
    assert f.mm1_wait_mean_s(**MM1) == pytest.approx(0.4)            # rho S/(1-rho)
    assert f.mm1_in_system_mean(**MM1) == pytest.approx(4.0)         # rho/(1-rho)
    assert f.mm1_response_quantile_s(0.99, **MM1) == pytest.approx(math.log(100) / 2)  # 2.303 s
    assert f.mm1_response_quantile_s(0.5, **MM1) == pytest.approx(math.log(2) / 2)
    assert f.mm1_response_quantile_s(0.0, **MM1) == 0.0
    # An empty system: no waiting, the response is the service time.
    assert f.mm1_response_mean_s(arrival_rate_per_s=0, service_mean_s=0.1) == pytest.approx(0.1)


def test_arrival_rate_for_inverts_utilisation():
    lam = f.arrival_rate_for(0.8, service_mean_s=0.01, workers=4)
    assert lam == pytest.approx(320.0)
    assert f.utilisation(arrival_rate_per_s=lam, service_mean_s=0.01, workers=4) == pytest.approx(0.8)


def _erlang_c_exact(c: int, a: Fraction) -> Fraction:
    """The textbook closed form, in exact rational arithmetic (no overflow, no rounding)."""
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("c,a", [(1, Fraction(1, 2)), (2, Fraction(1)), (3, Fraction(5, 2)),
                                 (5, Fraction(4)), (10, Fraction(8)), (20, Fraction(39, 2)),
                                 (300, Fraction(290))])
def test_erlang_c_matches_the_closed_form(c, a):
    got = f.erlang_c(workers=c, arrival_rate_per_s=float(a), service_mean_s=1.0)
    assert got == pytest.approx(float(_erlang_c_exact(c, a)), rel=1e-9)


def test_erlang_c_known_values():
    # M/M/2 at rho = 0.5: P(wait) = 2 rho^2 / (1 + rho) = 1/3 (by hand).
    assert f.erlang_c(workers=2, arrival_rate_per_s=1.0, service_mean_s=1.0) == pytest.approx(1 / 3)
    # One worker: an arrival waits exactly when the server is busy, probability rho.
    assert f.erlang_c(workers=1, arrival_rate_per_s=0.7, service_mean_s=1.0) == pytest.approx(0.7)
    # 10 agents, 8 erlangs: 0.40918 (call-centre tables).
    assert f.erlang_c(workers=10, arrival_rate_per_s=8.0, service_mean_s=1.0) == pytest.approx(
        0.40918, abs=5e-5)


def test_erlang_c_stays_finite_for_many_workers():
    # a^c / c! overflows a float long before c = 5000; the recursion never forms it.
    p = f.erlang_c(workers=5000, arrival_rate_per_s=4950.0, service_mean_s=1.0)
    assert 0.0 < p < 1.0 and math.isfinite(p)
    # More workers at the same utilisation wait less often (economies of scale).
    assert p < f.erlang_c(workers=50, arrival_rate_per_s=49.5, service_mean_s=1.0)


def test_mmc_with_one_worker_is_mm1():
    for rho in (0.1, 0.5, 0.8, 0.99):
        kw = {"arrival_rate_per_s": rho / 0.02, "service_mean_s": 0.02}
        assert f.mmc_response_mean_s(workers=1, **kw) == pytest.approx(f.mm1_response_mean_s(**kw))
        assert f.mmc_wait_mean_s(workers=1, **kw) == pytest.approx(f.mm1_wait_mean_s(**kw))
        # M/M/1 wait: P(W > t) = rho exp(-(mu - lambda) t).
        mu_minus_lam = (1 - rho) / 0.02
        assert f.mmc_wait_quantile_s(0.99, workers=1, **kw) == pytest.approx(
            math.log(rho / 0.01) / mu_minus_lam)
    # p below the share that never waits: the quantile is no wait at all.
    assert f.mmc_wait_quantile_s(0.5, workers=1, arrival_rate_per_s=10, service_mean_s=0.02) == 0.0


def test_mmc_by_hand_and_more_workers_help():
    # M/M/2, lambda = 1/s, S = 1 s: C = 1/3, wait = C S/(c - a) = 1/3 s, response 4/3 s.
    assert f.mmc_wait_mean_s(workers=2, arrival_rate_per_s=1, service_mean_s=1) == pytest.approx(1 / 3)
    assert f.mmc_response_mean_s(workers=2, arrival_rate_per_s=1, service_mean_s=1) == \
        pytest.approx(4 / 3)
    one = f.mm1_response_mean_s(arrival_rate_per_s=0.8, service_mean_s=1)
    four = f.mmc_response_mean_s(workers=4, arrival_rate_per_s=3.2, service_mean_s=1)
    assert 1.0 < four < one          # same utilisation 0.8: 1.75 S against 5 S


def test_md1_waits_half_as_long_as_mm1():
    for rho in (0.2, 0.5, 0.8, 0.95):
        kw = {"arrival_rate_per_s": rho / 0.01, "service_mean_s": 0.01}
        assert f.md1_wait_mean_s(**kw) == pytest.approx(f.mm1_wait_mean_s(**kw) / 2)
        assert f.md1_response_mean_s(**kw) == pytest.approx(0.01 + f.mm1_wait_mean_s(**kw) / 2)
        # Pollaczek-Khinchine with cv = 1 is M/M/1.
        assert f.mg1_wait_mean_s(service_cv=1.0, **kw) == pytest.approx(f.mm1_wait_mean_s(**kw))
    assert f.md1_response_mean_s(**MM1) == pytest.approx(0.1 + 0.8 * 0.1 / 0.4)  # 0.3 s


def test_littles_law_three_ways():
    assert f.littles_law_in_system(arrival_rate_per_s=200, response_mean_s=0.05) == pytest.approx(10)
    assert f.littles_law_response_s(in_system=10, arrival_rate_per_s=200) == pytest.approx(0.05)
    assert f.littles_law_rate_per_s(in_system=10, response_mean_s=0.05) == pytest.approx(200)
    # It ties the M/M/1 formulas together: L = lambda W.
    assert f.littles_law_in_system(arrival_rate_per_s=8, response_mean_s=f.mm1_response_mean_s(
        **MM1)) == pytest.approx(f.mm1_in_system_mean(**MM1))


def test_customers_needed():
    # (1.96 / 0.03)^2 = 4268.3 independent samples; times 2(1 + rho)/(1 - rho)^2 = 90 at 0.8.
    assert f.iid_customers_needed(rel_half_width=0.03) == 4269
    assert f.mm1_customers_needed(0.8, rel_half_width=0.03) == pytest.approx(384_146, abs=2)
    assert f.mm1_customers_needed(0.9) > 4 * f.mm1_customers_needed(0.8)
    assert f.mm1_customers_needed(0.8, rel_half_width=0.06) == pytest.approx(
        f.mm1_customers_needed(0.8) / 4, rel=1e-4)


@pytest.mark.parametrize("call", [
    lambda: f.mm1_response_mean_s(arrival_rate_per_s=10, service_mean_s=0.1),
    lambda: f.mm1_response_quantile_s(0.99, arrival_rate_per_s=12, service_mean_s=0.1),
    lambda: f.erlang_c(workers=4, arrival_rate_per_s=4.0, service_mean_s=1.0),
    lambda: f.mmc_response_mean_s(workers=2, arrival_rate_per_s=30, service_mean_s=0.1),
    lambda: f.md1_wait_mean_s(arrival_rate_per_s=100, service_mean_s=0.011),
])
def test_overload_says_the_queue_grows_without_bound(call):
    with pytest.raises(ValueError, match="grows without bound"):
        call()


@pytest.mark.parametrize("call,name", [
    (lambda: f.mm1_response_mean_s(arrival_rate_per_s=-1, service_mean_s=0.1), "arrival_rate_per_s"),
    (lambda: f.mm1_response_mean_s(arrival_rate_per_s=1, service_mean_s=0), "service_mean_s"),
    (lambda: f.mm1_response_mean_s(arrival_rate_per_s=float("nan"), service_mean_s=1), "arrival_rate"),
    (lambda: f.mm1_response_quantile_s(1.0, arrival_rate_per_s=1, service_mean_s=0.1), "p must"),
    (lambda: f.erlang_c(workers=0, arrival_rate_per_s=1, service_mean_s=0.1), "workers"),
    (lambda: f.erlang_c(workers=2.0, arrival_rate_per_s=1, service_mean_s=0.1), "workers"),
    (lambda: f.mg1_wait_mean_s(arrival_rate_per_s=1, service_mean_s=0.1, service_cv=-1), "service_cv"),
    (lambda: f.arrival_rate_for(1.0, service_mean_s=0.1), "utilisation"),
    (lambda: f.littles_law_response_s(in_system=3, arrival_rate_per_s=0), "arrival_rate_per_s"),
    (lambda: f.mm1_customers_needed(0.8, rel_half_width=0), "rel_half_width"),
    (lambda: f.mm1_customers_needed(0.5, confidence=1.0), "confidence"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
