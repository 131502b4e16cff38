"""Chapter 5 exercises (notebooks/05_retries.ipynb): full-jitter backoff, the half-open
decision of a circuit breaker, and (in `labkit.checks.payments`) a retry policy that meets an
SLO. Times are seconds as floats.

Numbering, as everywhere in labkit (`labkit.patterns.backoff`): `attempt` is the number of the
retry about to be made, so the first retry is attempt=1 and waits up to min(cap, 2 * base).
"""
from __future__ import annotations

import math
import random

from . import Wrong, exercise, plain, run_rng, shown


def _plain(got, name: str):
    """Reject an async answer to a plain-arithmetic exercise."""
    return plain(got, f"`{name}` does no I/O: make it a normal `def`, not `async def`.")


# ---------------------------------------------------------------------------------------------
# Exercise 1: full jitter


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry): a uniform draw
    between 0 and min(cap_s, base_s * 2**attempt), taken from `rng`."""
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** attempt))


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _draws(impl, attempt, base, cap, seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d = _plain(impl(attempt, base, cap, rng), "full_jitter")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
            raise Wrong(f"full_jitter({attempt}, {base}, {cap}, rng) returned {d!r}: return the "
                        "number of seconds to wait (a float).")
        out.append(float(d))
    return out


_CEILING_HINT = ("attempt=1 is the first retry: its ceiling is min(cap_s, 2 * base_s). The whole "
                 "formula is `rng.uniform(0, min(cap_s, base_s * 2 ** attempt))`.")


@exercise("05.full_jitter", reference=full_jitter, title="Exercise 1 · full_jitter",
          hint="The whole formula is `rng.uniform(0, min(cap_s, base_s * 2 ** attempt))`: the "
               "ceiling grows exponentially up to the cap, and the wait is anywhere below it.",
          timeout_s=15.0)
def check_full_jitter(impl) -> None:
    n = 2000
    cases = [(3, 0.1, 10.0), (1, 0.1, 10.0), (2, 0.05, 10.0), (6, 0.01, 10.0), (10, 0.1, 2.0)]
    for attempt, base, cap in cases:
        ceiling = min(cap, base * 2 ** attempt)
        expo = base * 2 ** attempt
        call = f"full_jitter(attempt={attempt}, base_s={base}, cap_s={cap}, rng)"
        ds = _draws(impl, attempt, base, cap, seed=attempt + 11, n=n)
        lo, hi, mean = min(ds), max(ds), sum(ds) / n
        if hi - lo < 1e-12 and not any(_near(lo, v) for v in (ceiling, expo, ceiling / 2, base)):
            raise Wrong(f"{call} returned {lo:.4g} s every time, whatever the `rng`: the same "
                        "value every time. A new generator seeded the same way on every call "
                        "(random.Random(attempt), random.seed(...)) draws the same number again, "
                        "so clients that failed together still retry together.",
                        "Use the `rng` you are given: `rng.uniform(0, ceiling)`.")
        if hi - lo < 1e-12:
            raise Wrong(f"{call} returned {lo:.4g} s every time: with no randomness, clients that "
                        "failed together retry together, and fail together again.",
                        "Draw the wait: `rng.uniform(0, ceiling)`.")
        if expo <= cap and lo >= 0.85 * expo and hi <= 1.15 * expo:
            raise Wrong(f"{call} stayed within ±{max(expo - lo, hi - expo) / expo:.0%} of "
                        f"base_s * 2**attempt = {expo:.4g} s: that is the source tutorial's ±10 % "
                        "jitter. Clients that failed together still retry within a narrow window "
                        "together; full jitter spreads them over the whole interval.",
                        "Draw from 0, not from around the exponential value: "
                        "`rng.uniform(0, min(cap_s, base_s * 2 ** attempt))`.")
        if lo < 0:
            raise Wrong(f"{call} returned a negative wait ({lo:.4g} s).")
        if hi > ceiling * (1 + 1e-9):
            capped = " (the cap)" if ceiling == cap else ""
            raise Wrong(f"{call} returned {hi:.4g} s, above the ceiling min(cap_s, base_s * "
                        f"2**attempt) = {ceiling:.4g} s{capped}.",
                        _CEILING_HINT + " Apply the cap to the ceiling before drawing.")
        at_cap = sum(1 for d in ds if abs(d - cap) < 1e-12) / n
        if at_cap > 0.2:
            raise Wrong(f"{call}: {at_cap:.0%} of your waits are exactly cap_s = {cap} s. You "
                        "capped after drawing, so most clients wait the same time again.",
                        "Cap the ceiling, then draw: `rng.uniform(0, min(cap_s, base_s * 2 ** attempt))`.")
        if lo >= 0.4 * ceiling:
            raise Wrong(f"{call} never waited less than {lo:.4g} s, {lo / ceiling:.0%} of the "
                        f"ceiling {ceiling:.4g} s: that is 'equal jitter' (half fixed, half "
                        "random). Full jitter draws from the whole interval 0..ceiling.",
                        "`rng.uniform(0, ceiling)`.")
        if expo <= cap and 0.45 * ceiling <= hi <= 0.5 * ceiling * (1 + 1e-9):
            raise Wrong(f"{call} never waited more than {hi:.4g} s, half the ceiling "
                        f"base_s * 2**attempt = {ceiling:.4g} s: your first retry is attempt=0. In "
                        "labkit the first retry is attempt=1 (the number of failed calls so far), "
                        "so its waits go up to 2 * base_s.", _CEILING_HINT)
        quarters = [sum(1 for d in ds if q * ceiling / 4 <= d < (q + 1) * ceiling / 4) / n
                    for q in range(4)]
        if lo > 0.05 * ceiling or hi < 0.95 * ceiling or abs(mean - ceiling / 2) > 0.05 * ceiling \
                or min(quarters) < 0.2:
            raise Wrong(f"{call}: over {n} draws your waits ranged {lo:.4g}..{hi:.4g} s with mean "
                        f"{mean:.4g} s, and the quarters of 0..{ceiling:.4g} s got "
                        f"{', '.join(f'{q:.0%}' for q in quarters)} of them. Full jitter is uniform "
                        f"over 0..{ceiling:.4g} s: about 25 % in each quarter, mean {ceiling / 2:.4g} s.")
    first = _draws(impl, 4, 0.1, 10.0, seed=7, n=20)
    again = _draws(impl, 4, 0.1, 10.0, seed=7, n=20)
    if first != again:
        raise Wrong("two generators with the same seed gave different waits: your function does "
                    "not draw (only) from the `rng` it is given. Then a run cannot be repeated, "
                    "and a simulation cannot give each client its own stream.",
                    "Use `rng.uniform(...)`, not `random.uniform(...)` or a new Random().")
    if first == _draws(impl, 4, 0.1, 10.0, seed=8, n=20):
        raise Wrong("generators with different seeds gave the same waits: draw from `rng`.")


# ---------------------------------------------------------------------------------------------
# Exercise 2: the half-open decision


def half_open_decision(admitted: int, results: list, permitted: int, threshold_pct: float) -> str:
    """What a half-open circuit breaker does next.

    admitted: trial calls let through so far (finished or still in flight); results: outcomes
    of the trials that finished (True = success); permitted: trial calls allowed in half-open;
    threshold_pct: failure rate (percent) at or above which the breaker opens again.
    Returns "closed" or "open" once all permitted trials have finished, else "admit" (one more
    trial call may go) or "reject" (all permits in use: wait for their results).
    """
    if len(results) >= permitted:
        failure_pct = 100 * results.count(False) / len(results)
        return "open" if failure_pct >= threshold_pct else "closed"
    return "admit" if admitted < permitted else "reject"


def acceptable(admitted: int, results: list, permitted: int, threshold_pct: float) -> set:
    """The right answers to one half-open situation.

    labkit's CircuitBreaker, like resilience4j (with minimum_number_of_calls >= permitted),
    decides once every trial has finished: that is the reference. Deciding earlier is the
    same breaker only when the outstanding trials can no longer change the verdict, so such
    an early "open" or "closed" is accepted, in both directions alike; while they still could,
    an early verdict is wrong, in both directions alike.
    """
    done, failed = len(results), results.count(False)
    if done >= permitted:
        return {"open" if failed * 100 >= threshold_pct * done else "closed"}
    ok = {"admit" if admitted < permitted else "reject"}
    if failed * 100 >= threshold_pct * permitted:                      # even if the rest succeed
        ok.add("open")
    if (failed + permitted - done) * 100 < threshold_pct * permitted:  # even if the rest fail
        ok.add("closed")
    return ok


def _half_open_cases(rng):
    """Situations (admitted, results, permitted, threshold_pct): a fixed table (with the exact
    boundary), then random ones drawn per run, away from any boundary."""
    T, F = True, False
    fixed = [(0, [], 3, 50.0), (1, [], 3, 50.0), (2, [T], 3, 50.0), (2, [F], 3, 50.0),
             (3, [], 3, 50.0), (3, [T], 3, 50.0), (3, [F], 3, 50.0), (3, [T, T], 3, 50.0),
             (3, [F, F], 3, 50.0), (3, [T, T, T], 3, 50.0), (3, [T, F, F], 3, 50.0),
             (3, [F, F, F], 3, 50.0), (4, [T, T, F, F], 4, 50.0), (4, [T, T, T, F], 4, 50.0),
             (3, [F, T, T], 3, 30.0), (3, [T, T, F], 3, 40.0), (0, [], 1, 50.0), (1, [], 1, 50.0),
             (1, [T], 1, 50.0), (1, [F], 1, 50.0), (9, [T] * 5, 10, 50.0), (10, [T] * 9, 10, 50.0),
             (10, [T] * 6 + [F] * 4, 10, 50.0), (10, [F] * 5 + [T] * 5, 10, 50.0)]
    drawn = []
    while len(drawn) < 12:
        permitted = rng.randint(2, 10)
        done = rng.randint(0, permitted)
        results = [rng.random() > 0.4 for _ in range(done)]
        failed, threshold = results.count(False), rng.choice([20.0, 25.0, 40.0, 50.0, 60.0, 75.0])
        if threshold * permitted in (failed * 100, (failed + permitted - done) * 100) or \
                (done and failed * 100 == threshold * done):
            continue
        drawn.append((rng.randint(done, permitted), results, permitted, threshold))
    return fixed + drawn


@exercise("05.half_open_decision", reference=half_open_decision,
          title="Exercise 2 · half_open_decision",
          hint="First: have all `permitted` trials finished (len(results) >= permitted)? Then "
               "compare 100 * failures / len(results) with threshold_pct (>= opens). Otherwise "
               "admit only while admitted < permitted.", timeout_s=10.0)
def check_half_open_decision(impl) -> None:
    for admitted, results, permitted, threshold in _half_open_cases(run_rng("05.half_open_decision")):
        got = _plain(impl(admitted, list(results), permitted, threshold), "half_open_decision")
        ok = acceptable(admitted, results, permitted, threshold)
        if got in ok:
            continue
        call = (f"half_open_decision(admitted={admitted}, results={results}, "
                f"permitted={permitted}, threshold_pct={threshold:g})")
        raise Wrong(f"{call} returned {got!r}: " + _half_open_why(got, admitted, results,
                                                                  permitted, threshold),
                    _HALF_OPEN_HINT)


_HALF_OPEN_HINT = ("Decide only when len(results) >= permitted: 'open' if 100 * failures / "
                   "len(results) >= threshold_pct, else 'closed'. Until then 'admit' while "
                   "admitted < permitted, else 'reject'.")


def _half_open_why(got, admitted, results, permitted, threshold) -> str:
    """Why `got` is wrong here, in the learner's terms (true for this situation)."""
    done, failed = len(results), results.count(False)
    out = permitted - done
    if got not in ("admit", "reject", "open", "closed"):
        return "return one of 'admit', 'reject', 'open', 'closed'."
    if done < permitted and got == "closed":
        worst = failed + out
        return (f"only {done} of {permitted} trials have finished, and the {out} outstanding "
                f"could still fail: then {worst} of {permitted} would have failed "
                f"({shown(worst / permitted, threshold / 100, percent=True)} >= {threshold:g} %) "
                "and the breaker would have to open. Wait for the trials (closing on the first "
                "success is the classic bug).")
    if done < permitted and got == "open":
        return (f"only {done} of {permitted} trials have finished, and the {out} outstanding "
                f"could still succeed: then only {failed} of {permitted} would have failed "
                f"({shown(failed / permitted, threshold / 100, percent=True)} < {threshold:g} %) "
                "and the breaker would close. Wait for the trials.")
    if done < permitted and got == "admit":
        return (f"all {permitted} trial permits are in use and you let call number "
                f"{admitted + 1} through. A half-open breaker admits only `permitted` trials; "
                "letting everyone through sends the full load to a service that may still be "
                "down (the source tutorial's HALF_OPEN did that).")
    if done < permitted:           # "reject" while permits are free
        if admitted == 0:
            return ("a half-open breaker that lets no trial call through can never find out "
                    "that the service is back. While admitted < permitted, answer 'admit'.")
        return (f"only {admitted} of {permitted} trial permits are used, so this call may go "
                "through as a trial.")
    rate = shown(failed / done, threshold / 100, percent=True)
    if got in ("admit", "reject"):
        return (f"all {permitted} trials have finished ({failed} failed, {rate}): the breaker "
                "must decide now, 'open' or 'closed'.")
    if got == "closed":
        if failed * 100 == threshold * done:
            extra = " At exactly the threshold the breaker opens (>=, as resilience4j does)."
        else:
            extra = (f" (threshold_pct is a percent: {threshold:g} means {threshold:g} %; compare "
                     "100 * failures / len(results), not a fraction, with it.)")
        return (f"{failed} of {done} trials failed ({rate} >= {threshold:g} %), so the service "
                f"is still unhealthy and the breaker must open again.{extra}")
    return (f"all {permitted} trials finished and only {rate} failed (below {threshold:g} %): "
            "close the breaker. Otherwise it never returns to normal.")


# Exercise 3 lives in its own module; importing it here registers it after the two above.
from .payments import PAYMENTS, payment_policy, payment_slo, slo_report  # noqa: E402,F401
