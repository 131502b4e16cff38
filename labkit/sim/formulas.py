"""Queueing formulas the simulator is checked against (chapter 06, "Queueing").

Steady-state results for a queue fed by Poisson arrivals (rate λ, `arrival_rate_per_s`) with
`workers` servers whose service time has mean S (`service_mean_s`); utilisation
ρ = λ·S / workers. Times are seconds.

- M/M/1 (exponential service): mean response S/(1−ρ); the response time is exponential with
  rate μ−λ (μ = 1/S), so its p-quantile is −ln(1−p)/(μ−λ), p99 = ln(100)/(μ−λ).
- M/M/c: Erlang C gives the probability that an arrival waits; mean wait C·S/(c−a) with
  a = λ·S the offered load in erlangs.
- M/G/1 (Pollaczek–Khinchine): mean wait ρ·S·(1+cv²)/(2(1−ρ)); M/D/1 (fixed service,
  cv = 0) waits half as long as M/M/1 (cv = 1).
- Little's law: L = λ·W for any stable system, whatever its distributions.

At ρ >= 1 there is no steady state (the queue grows without bound): every function here
raises ValueError instead of returning a negative or infinite number. Pure: no I/O, no clock.
"""
from __future__ import annotations

import math
from statistics import NormalDist

from labkit._core import validate

__all__ = ["utilisation", "arrival_rate_for", "mm1_response_mean_s", "mm1_wait_mean_s",
           "mm1_response_quantile_s", "mm1_in_system_mean", "erlang_c", "mmc_wait_mean_s",
           "mmc_response_mean_s", "mmc_wait_quantile_s", "mg1_wait_mean_s", "md1_wait_mean_s",
           "md1_response_mean_s", "littles_law_in_system", "littles_law_response_s",
           "littles_law_rate_per_s", "mm1_customers_needed", "iid_customers_needed"]


def _rate(arrival_rate_per_s) -> float:
    return validate.number("arrival_rate_per_s", arrival_rate_per_s, 0.0,
                           unit=" arrivals per second")


def _service(service_mean_s) -> float:
    return validate.number("service_mean_s", service_mean_s, 0.0, lo_open=True, unit=" seconds")


def _stable(rho: float, lam: float, s: float, c: int) -> float:
    if rho >= 1.0:
        raise ValueError(
            f"utilisation rho = arrival_rate_per_s * service_mean_s / workers = {lam:g} * {s:g} / "
            f"{c} = {rho:.4g} >= 1: work arrives at least as fast as the workers finish it, so "
            f"the queue grows without bound and there is no steady state (lower "
            f"arrival_rate_per_s, shorten service_mean_s or add workers)")
    return rho


def utilisation(*, arrival_rate_per_s: float, service_mean_s: float, workers: int = 1) -> float:
    """ρ = λ·S / workers: the share of time each worker is busy (any value >= 0)."""
    lam, s = _rate(arrival_rate_per_s), _service(service_mean_s)
    return lam * s / validate.integer("workers", workers, 1)


def arrival_rate_for(utilisation: float, *, service_mean_s: float, workers: int = 1) -> float:
    """The arrival rate λ (per second) that loads `workers` servers to `utilisation` (0 <= ρ < 1)."""
    rho = validate.number("utilisation", utilisation, 0.0, 1.0, hi_open=True)
    return rho * validate.integer("workers", workers, 1) / _service(service_mean_s)


def _rho(arrival_rate_per_s, service_mean_s, workers=1) -> tuple[float, float, float, int]:
    lam, s = _rate(arrival_rate_per_s), _service(service_mean_s)
    c = validate.integer("workers", workers, 1)
    return _stable(lam * s / c, lam, s, c), lam, s, c


# -- M/M/1 ---------------------------------------------------------------------------------

def mm1_response_mean_s(*, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean time in the system (wait + service) of M/M/1: S / (1 − ρ)."""
    rho, _, s, _ = _rho(arrival_rate_per_s, service_mean_s)
    return s / (1.0 - rho)


def mm1_wait_mean_s(*, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean time in the queue of M/M/1 (before service starts): ρ·S / (1 − ρ)."""
    rho, _, s, _ = _rho(arrival_rate_per_s, service_mean_s)
    return rho * s / (1.0 - rho)


def mm1_response_quantile_s(p: float, *, arrival_rate_per_s: float,
                            service_mean_s: float) -> float:
    """p-quantile of the M/M/1 response time, exponential with rate μ−λ: −ln(1−p)/(μ−λ).

    p = 0.99 gives ln(100)/(μ−λ) ≈ 4.6 mean responses."""
    p = validate.number("p", p, 0.0, 1.0, hi_open=True)
    rho, _, s, _ = _rho(arrival_rate_per_s, service_mean_s)
    return -math.log1p(-p) * s / (1.0 - rho)


def mm1_in_system_mean(*, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean number in the system of M/M/1 (waiting + in service): ρ / (1 − ρ)."""
    rho, _, _, _ = _rho(arrival_rate_per_s, service_mean_s)
    return rho / (1.0 - rho)


# -- M/M/c: Erlang C -----------------------------------------------------------------------

def erlang_c(*, workers: int, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Probability that an arrival finds all `workers` busy and waits (Erlang C).

    Computed through the Erlang B recursion B(k) = a·B(k−1) / (k + a·B(k−1)), which never
    forms a^c or c! and so stays exact for thousands of workers; then
    C = B / (1 − ρ·(1 − B)). With one worker C = ρ.
    """
    rho, lam, s, c = _rho(arrival_rate_per_s, service_mean_s, workers)
    a = lam * s  # offered load, erlangs
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b / (1.0 - rho * (1.0 - b))


def mmc_wait_mean_s(*, workers: int, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean time in the queue of M/M/c: C · S / (c − a), a = λ·S."""
    c_wait = erlang_c(workers=workers, arrival_rate_per_s=arrival_rate_per_s,
                      service_mean_s=service_mean_s)
    a = arrival_rate_per_s * service_mean_s
    return c_wait * service_mean_s / (workers - a)


def mmc_response_mean_s(*, workers: int, arrival_rate_per_s: float,
                        service_mean_s: float) -> float:
    """Mean time in the system of M/M/c: mean wait + S."""
    return mmc_wait_mean_s(workers=workers, arrival_rate_per_s=arrival_rate_per_s,
                           service_mean_s=service_mean_s) + float(service_mean_s)


def mmc_wait_quantile_s(p: float, *, workers: int, arrival_rate_per_s: float,
                        service_mean_s: float) -> float:
    """p-quantile of the M/M/c wait: P(wait > t) = C·exp(−(c−a)·t/S); 0 when 1−p >= C."""
    p = validate.number("p", p, 0.0, 1.0, hi_open=True)
    c_wait = erlang_c(workers=workers, arrival_rate_per_s=arrival_rate_per_s,
                      service_mean_s=service_mean_s)
    if 1.0 - p >= c_wait:
        return 0.0
    a = arrival_rate_per_s * service_mean_s
    return service_mean_s / (workers - a) * math.log(c_wait / (1.0 - p))


# -- M/G/1 and M/D/1: Pollaczek–Khinchine --------------------------------------------------

def mg1_wait_mean_s(*, arrival_rate_per_s: float, service_mean_s: float,
                    service_cv: float) -> float:
    """Mean wait of M/G/1 (Pollaczek–Khinchine): ρ·S·(1 + cv²) / (2(1 − ρ)).

    `service_cv` is the service time's standard deviation over its mean: 0 fixed, 1 exponential.
    """
    cv = validate.number("service_cv", service_cv, 0.0, 1e6)
    rho, _, s, _ = _rho(arrival_rate_per_s, service_mean_s)
    return rho * s * (1.0 + cv * cv) / (2.0 * (1.0 - rho))


def md1_wait_mean_s(*, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean wait of M/D/1 (fixed service time): ρ·S / (2(1 − ρ)), half of M/M/1's."""
    return mg1_wait_mean_s(arrival_rate_per_s=arrival_rate_per_s, service_mean_s=service_mean_s,
                           service_cv=0.0)


def md1_response_mean_s(*, arrival_rate_per_s: float, service_mean_s: float) -> float:
    """Mean time in the system of M/D/1: S + ρ·S / (2(1 − ρ))."""
    return md1_wait_mean_s(arrival_rate_per_s=arrival_rate_per_s,
                           service_mean_s=service_mean_s) + float(service_mean_s)


# -- Little's law --------------------------------------------------------------------------

def littles_law_in_system(*, arrival_rate_per_s: float, response_mean_s: float) -> float:
    """L = λ·W: mean number in the system from throughput and mean time in the system."""
    return _rate(arrival_rate_per_s) * validate.number("response_mean_s", response_mean_s, 0.0,
                                                       unit=" seconds")


def littles_law_response_s(*, in_system: float, arrival_rate_per_s: float) -> float:
    """W = L / λ: mean time in the system from the mean number in it and the throughput."""
    lam = validate.number("arrival_rate_per_s", arrival_rate_per_s, 0.0, lo_open=True,
                          unit=" arrivals per second")
    return validate.number("in_system", in_system, 0.0) / lam


def littles_law_rate_per_s(*, in_system: float, response_mean_s: float) -> float:
    """λ = L / W: the throughput a system with L in flight for W seconds each sustains."""
    w = validate.number("response_mean_s", response_mean_s, 0.0, lo_open=True, unit=" seconds")
    return validate.number("in_system", in_system, 0.0) / w


# -- how long to simulate ------------------------------------------------------------------

def _z(confidence) -> float:
    conf = validate.number("confidence", confidence, 0.0, 1.0, lo_open=True, hi_open=True)
    return NormalDist().inv_cdf(0.5 + conf / 2.0)


def _rel(rel_half_width) -> float:
    return validate.number("rel_half_width", rel_half_width, 0.0, 1.0, lo_open=True)


def iid_customers_needed(*, rel_half_width: float = 0.03, confidence: float = 0.95,
                         cv: float = 1.0) -> int:
    """Samples for a mean within ±rel_half_width if they were independent: (z·cv/ε)².

    `cv` is their standard deviation over their mean (1 for M/M/1 response times). Queued
    customers are not independent, see `mm1_customers_needed`."""
    cv = validate.number("cv", cv, 0.0, 1e6)
    return math.ceil((_z(confidence) * cv / _rel(rel_half_width)) ** 2)


def mm1_customers_needed(utilisation: float, *, rel_half_width: float = 0.03,
                         confidence: float = 0.95) -> int:
    """Customers to simulate so the M/M/1 mean response is within ±rel_half_width of the truth.

    Consecutive customers share a queue, so their times are correlated and n of them carry
    far less information than n independent draws. The asymptotic variance of the mean number
    in system (Whitt 1989, "Planning queueing simulations") is 2ρ(1+ρ)/(1−ρ)⁴ in units of S;
    through L = λW it gives n ≈ (z/ε)² · 2(1+ρ)/(1−ρ)² customers: about 384,000 at ρ = 0.8
    for ±3 % at 95 %, 90 times the 4,300 that independent samples would need. Excludes the
    warm-up customers.
    """
    rho = validate.number("utilisation", utilisation, 0.0, 1.0, lo_open=True, hi_open=True)
    factor = 2.0 * (1.0 + rho) / (1.0 - rho) ** 2
    return math.ceil((_z(confidence) / _rel(rel_half_width)) ** 2 * factor)
