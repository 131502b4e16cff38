"""Chapter 5 exercises (notebooks/05_retries.ipynb): full-jitter backoff, the half-open
decision of a circuit breaker, and a retry policy that meets an SLO.

`payment_slo(payment_policy)` runs exercise 3's simulation and returns its numbers, so a
learner can try policies before checking one. Times are seconds as floats.
"""
from __future__ import annotations

import asyncio
import math
import random

from labkit._core import seeding

from labkit import sim
from labkit.patterns.backoff import Constant, FullJitter, NoBackoff
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import ServiceError
from labkit.obs.metrics import percentile
from labkit.patterns.retry import Retry
from . import Wrong, exercise, plain


def _plain(got, name: str):
    """Reject an async answer to a plain-arithmetic exercise."""
    return plain(got, f"`{name}` does no I/O: make it a normal `def`, not `async def`.")


_BUILDS_ONLY = "`payment_policy` only builds a policy: make it a normal `def`."


# ---------------------------------------------------------------------------------------------
# Exercise 1: full jitter


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry): a uniform draw
    between 0 and min(cap_s, base_s * 2**attempt), taken from `rng`."""
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** attempt))


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


@exercise("05.full_jitter", reference=full_jitter, title="Exercise 1 · full_jitter",
          hint="The whole formula is `rng.uniform(0, min(cap_s, base_s * 2 ** attempt))`: the "
               "ceiling grows exponentially up to the cap, and the wait is anywhere below it.")
async def check_full_jitter(impl) -> None:
    n = 2000
    cases = [(3, 0.1, 10.0), (0, 0.1, 10.0), (1, 0.05, 10.0), (6, 0.01, 10.0), (10, 0.1, 2.0)]
    for attempt, base, cap in cases:
        ceiling = min(cap, base * 2 ** attempt)
        expo = base * 2 ** attempt
        call = f"full_jitter(attempt={attempt}, base_s={base}, cap_s={cap}, rng)"
        ds = _draws(impl, attempt, base, cap, seed=attempt + 11, n=n)
        lo, hi, mean = min(ds), max(ds), sum(ds) / n
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
                        "attempt=0 is the first retry: its ceiling is base_s. Apply the cap to "
                        "the ceiling before drawing.")
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


def _half_open_cases():
    """(admitted, results, permitted, threshold, acceptable answers, what is being tested)."""
    T, F = True, False
    return [
        (0, [], 3, 50.0, {"admit"}, "first"),
        (1, [], 3, 50.0, {"admit"}, "more"),
        (2, [T], 3, 50.0, {"admit"}, "more"),
        (3, [], 3, 50.0, {"reject"}, "limit"),
        (3, [T], 3, 50.0, {"reject"}, "early_close"),
        (3, [T, T], 3, 50.0, {"reject"}, "early_close"),
        (3, [T, T, T], 3, 50.0, {"closed"}, "close"),
        (3, [T, F, F], 3, 50.0, {"open"}, "reopen"),
        (3, [F, F, F], 3, 50.0, {"open"}, "reopen"),
        (3, [F, F], 3, 50.0, {"reject", "open"}, "early_open_ok"),
        (4, [T, T, F, F], 4, 50.0, {"open"}, "boundary"),
        (4, [T, T, T, F], 4, 50.0, {"closed"}, "close"),
        (3, [F, T, T], 3, 30.0, {"open"}, "percent"),
        (3, [T, T, F], 3, 40.0, {"closed"}, "close"),
        (0, [], 1, 50.0, {"admit"}, "first"),
        (1, [], 1, 50.0, {"reject"}, "limit"),
        (1, [T], 1, 50.0, {"closed"}, "close"),
        (1, [F], 1, 50.0, {"open"}, "reopen"),
        (9, [T] * 5, 10, 50.0, {"admit"}, "more"),
        (10, [T] * 9, 10, 50.0, {"reject"}, "early_close"),
        (10, [T] * 6 + [F] * 4, 10, 50.0, {"closed"}, "close"),
        (10, [F] * 5 + [T] * 5, 10, 50.0, {"open"}, "boundary"),
    ]


@exercise("05.half_open_decision", reference=half_open_decision,
          title="Exercise 2 · half_open_decision",
          hint="First: have all `permitted` trials finished (len(results) >= permitted)? Then "
               "compare 100 * failures / len(results) with threshold_pct (>= opens). Otherwise "
               "admit only while admitted < permitted.")
async def check_half_open_decision(impl) -> None:
    for admitted, results, permitted, threshold, ok, what in _half_open_cases():
        got = _plain(impl(admitted, list(results), permitted, threshold), "half_open_decision")
        if got in ok:
            continue
        fails = results.count(False)
        call = (f"half_open_decision(admitted={admitted}, results={results}, "
                f"permitted={permitted}, threshold_pct={threshold:g})")
        if got not in ("admit", "reject", "open", "closed"):
            raise Wrong(f"{call} returned {got!r}; return one of 'admit', 'reject', 'open', 'closed'.")
        if got in ("open", "closed") and len(results) < permitted:
            raise Wrong(f"{call} returned {got!r}: only {len(results)} of {permitted} trials have "
                        "finished. Deciding on the first results uses too little evidence: the "
                        "outstanding trials may fail (closing on the first success is the classic "
                        "bug).",
                        "Decide only when len(results) >= permitted; until then 'admit' while "
                        "admitted < permitted, else 'reject'.")
        if what == "first":
            raise Wrong(f"{call} returned {got!r}: a half-open breaker that lets no trial call "
                        "through can never find out that the service is back.",
                        "While admitted < permitted, answer 'admit'.")
        if what == "more":
            raise Wrong(f"{call} returned {got!r}: only {admitted} of {permitted} trial permits "
                        "are used, so this call may go through as a trial.")
        if what == "limit":
            raise Wrong(f"{call} returned {got!r}: all {permitted} trial permits are in use and "
                        f"you let call number {admitted + 1} through. A half-open breaker admits "
                        "only `permitted` trials; letting everyone through sends the full load to a "
                        "service that may still be down (the source tutorial's HALF_OPEN did that).",
                        "Answer 'reject' when admitted >= permitted and results are still missing.")
        if what == "early_close":
            raise Wrong(f"{call} returned {got!r}: only {len(results)} of {permitted} trials have "
                        f"finished ({admitted - len(results)} still in flight). Closing on the first "
                        "success decides on too little evidence: the outstanding trials may fail.",
                        "Decide only when len(results) >= permitted; until then 'reject'.")
        if what in ("reopen", "boundary", "percent"):
            rate = 100 * fails / len(results)
            extra = f" (threshold_pct is a percent: {threshold:g} means {threshold:g} %.)"
            if what == "boundary":
                extra = " At exactly the threshold the breaker opens (>=, as resilience4j does)."
            if what == "percent":
                extra = (f" threshold_pct={threshold:g} means {threshold:g} %: compare "
                         "100 * failures / len(results), not a fraction, with it.")
            raise Wrong(f"{call} returned {got!r}: {fails} of {len(results)} trials failed "
                        f"({rate:.0f} % >= {threshold:g} %), so the service is still unhealthy and "
                        f"the breaker must open again.{extra}",
                        "`return 'open' if 100 * results.count(False) / len(results) >= "
                        "threshold_pct else 'closed'` once all trials are in.")
        if what == "close":
            rate = 100 * fails / len(results)
            raise Wrong(f"{call} returned {got!r}: all {permitted} trials finished and only "
                        f"{rate:.0f} % failed (below {threshold:g} %): close the breaker. "
                        "Otherwise it never returns to normal.")
        raise Wrong(f"{call} returned {got!r}, expected {' or '.join(sorted(ok))}.")


# ---------------------------------------------------------------------------------------------
# Exercise 3: a retry policy that meets an SLO (virtual time)

#: The fault and the SLO of exercise 3 (seconds, shares 0..1).
PAYMENTS = {
    "rate_per_s": 20.0,           # payments per second (Poisson)
    "normal_s": 100.0,            # a normal day...
    "burst_s": 0.020,             # ...where the service sheds load in 20-ms bursts
    "shed_share": 0.20,           # 20 % of the bursts answer 503 to every call
    "slow_share": 0.02,           # 2 % of the calls it serves take...
    "slow_s": 3.0,                # ...3 s (and are done: the payment happens)
    "latency_s": 0.020,           # other calls take 20 ms
    "error_latency_s": 0.002,     # a 503 comes back in 2 ms
    "outage_start_s": 105.0,      # then an outage: every call 503, for
    "outage_s": 10.0,
    "budget": {"max_tokens": 50, "token_ratio": 0.5},   # the shared budget handed to the policy
    "slo": {"success": 0.99, "p99_s": 1.0, "calls": 1.4, "outage_calls": 1.5},
}


def payment_policy(idempotency_key: str, budget: RetryBudget) -> Retry:
    """The retry policy for one POST /payments: retried only with its idempotency key, 4
    attempts of at most 0.25 s each, full-jitter waits, behind the client's shared budget."""
    return Retry(method="POST", idempotency_key=idempotency_key, max_attempts=4,
                 attempt_timeout_s=0.25, max_total_s=1.0,
                 backoff=FullJitter(base=0.05, cap=1.0), budget=budget)


def payment_slo(policy_for, *, seed: int = 0) -> dict:
    """Run exercise 3's simulation with `policy_for(idempotency_key, budget) -> Retry` and
    return its numbers: per phase ("normal", "outage") payments, success share, p99 latency
    (s), calls per payment and payments charged twice; plus the retries the budget denied and
    why the policy gave up. Virtual time: about 0.2 s of wall time."""
    P = PAYMENTS

    async def main():
        loop = asyncio.get_running_loop()
        server = seeding.rng("05.payment_policy:server", seed)
        arrivals = seeding.rng("05.payment_policy:arrivals", seed)
        budget = RetryBudget(**P["budget"])
        bursts: dict[int, bool] = {}
        charges: dict[int, int] = {}
        keys: set = set()
        calls: dict[int, int] = {}
        results = []
        causes: dict[str, int] = {}
        out_start, out_end = P["outage_start_s"], P["outage_start_s"] + P["outage_s"]

        def shed(t):
            k = int(t / P["burst_s"])
            if k not in bursts:
                bursts[k] = server.random() < P["shed_share"]
            return bursts[k]

        def done(fut, rid, key):
            # The server did the work, whether or not the caller is still waiting.
            if key is None or key not in keys:
                if key is not None:
                    keys.add(key)
                charges[rid] = charges.get(rid, 0) + 1
            if not fut.done():
                fut.set_result({"payment": rid})

        def unavailable(fut):
            if not fut.done():
                fut.set_exception(ServiceError.from_status(503, "payments: 503"))

        def post_payment(rid, key):
            calls[rid] = calls.get(rid, 0) + 1
            fut = loop.create_future()
            t = loop.time()
            if out_start <= t < out_end or shed(t):
                loop.call_later(P["error_latency_s"], unavailable, fut)
            else:
                slow = server.random() < P["slow_share"]
                loop.call_later(P["slow_s"] if slow else P["latency_s"], done, fut, rid, key)
            return fut

        async def payment(rid, phase):
            policy = plain(policy_for(f"payment-{rid}", budget), _BUILDS_ONLY)
            if not isinstance(policy, Retry):
                raise Wrong(f"`payment_policy` returned {type(policy).__name__}; return a "
                            "labkit.patterns.retry.Retry(...).")
            policy.rng = seeding.rng(f"05.payment_policy:retry:{rid}", seed)  # its own stream
            first = len(policy.events)
            t0 = loop.time()
            try:
                await policy.call(post_payment, rid, policy.idempotency_key)
                ok = True
            except (ServiceError, TimeoutError):
                ok = False
            for e in policy.events[first:]:
                if e.outcome == "give_up":
                    causes[e.cause] = causes.get(e.cause, 0) + 1
            results.append((rid, phase, ok, loop.time() - t0))

        tasks, rid = [], 0
        for phase, start, length in (("normal", 0.0, P["normal_s"]), ("outage", out_start, P["outage_s"])):
            t = start
            while True:
                t += arrivals.expovariate(P["rate_per_s"])
                if t >= start + length:
                    break
                await asyncio.sleep(t - loop.time())
                rid += 1
                tasks.append(asyncio.ensure_future(payment(rid, phase)))
        await asyncio.gather(*tasks)
        out = {}
        for phase in ("normal", "outage"):
            rows = [r for r in results if r[1] == phase]
            n = len(rows)
            out[phase] = {"payments": n, "success": sum(r[2] for r in rows) / n,
                          "p99_s": percentile([r[3] for r in rows], 99),
                          "calls_per_payment": sum(calls.get(r[0], 0) for r in rows) / n,
                          "charged_twice": sum(1 for r in rows if charges.get(r[0], 0) > 1)}
        out["budget_denied"] = budget.denied
        out["give_up_causes"] = causes
        return out

    return sim.run(main, seed=seed)


def _slo_line(m: dict) -> str:
    s, n, o = PAYMENTS["slo"], m["normal"], m["outage"]
    return (f"normal day: {n['success']:.1%} succeeded (SLO >= {s['success']:.0%}), p99 "
            f"{n['p99_s']:.2f} s (<= {s['p99_s']:g} s), {n['calls_per_payment']:.2f} calls per "
            f"payment (<= {s['calls']:g}), {n['charged_twice']} charged twice (SLO 0); outage: "
            f"{o['calls_per_payment']:.2f} calls per payment (<= {s['outage_calls']:g}).")


def _first_wait_s(policy: Retry) -> float:
    """Mean of the first backoff wait (what an immediate retry looks like)."""
    b = policy.backoff
    if isinstance(b, NoBackoff):
        return 0.0
    r = random.Random(0)
    return sum(b.delay(1, r, None) for _ in range(200)) / 200


@exercise("05.payment_policy", reference=payment_policy, title="Exercise 3 · payment_policy",
          hint="Retry(method='POST', idempotency_key=idempotency_key, max_attempts=4, "
               "attempt_timeout_s=0.25, backoff=FullJitter(base=0.05, cap=1.0), budget=budget)")
async def check_payment_policy(impl) -> None:
    probe = plain(impl("probe", RetryBudget(**PAYMENTS["budget"])), _BUILDS_ONLY)
    if not isinstance(probe, Retry):
        raise Wrong(f"`payment_policy` returned {probe!r}; return a labkit.patterns.retry.Retry(...) for "
                    "one payment.", "`return Retry(method='POST', idempotency_key=idempotency_key, ...)`")
    m = await asyncio.to_thread(payment_slo, impl)
    slo, normal, outage = PAYMENTS["slo"], m["normal"], m["outage"]
    report = _slo_line(m)
    if normal["charged_twice"]:
        raise Wrong(f"{normal['charged_twice']} customers were charged twice. A POST that timed "
                    "out may still have been done (the slow calls were), and your policy sent it "
                    f"again without its idempotency key. {report}",
                    "Pass `idempotency_key=idempotency_key` to Retry (it is sent with every "
                    "attempt, so the service does the payment once); never mark a POST "
                    "idempotent=True without one.")
    if normal["success"] < slo["success"]:
        not_safe = sum(v for k, v in m["give_up_causes"].items() if "not idempotent" in k)
        if not_safe:
            msg = ("your policy never retried: Retry refuses to repeat a POST that has no "
                   "idempotency key (rightly: it might charge twice).")
            hint = "Give it the key: `Retry(method='POST', idempotency_key=idempotency_key, ...)`."
        elif probe.max_attempts == 1:
            msg = "max_attempts=1 means no retries, and one call in five fails."
            hint = "How many attempts make 0.22 ** n < 1 %?"
        elif _first_wait_s(probe) < 0.01 or isinstance(probe.backoff, Constant) and probe.backoff.base < 0.02:
            msg = ("your retries go out within a few milliseconds, inside the same 20-ms burst "
                   "of 503s, and fail again.")
            hint = "Back off with jitter, e.g. FullJitter(base=0.05, cap=1.0): waits of up to 100, 200, 400 ms."
        elif m["budget_denied"] and normal["calls_per_payment"] < 1.2:
            msg = (f"your retry budget denied {m['budget_denied']} retries on a normal day: a "
                   "budget sized for rare errors throttles a service that fails 20 % of the time.")
            hint = "Use the `budget` you are given (sized for this service), not one of your own."
        else:
            msg = ("not enough attempts get through: one call fails about 22 % of the time "
                   "(20 % bursts of 503 plus 2 % slow calls cut by your timeout).")
            hint = ("All n attempts fail about 0.22 ** n of the time: choose n (max_attempts) "
                    "so that this is below 1 %, and let max_total_s allow them.")
        raise Wrong(f"{msg} {report}", hint)
    if normal["p99_s"] > slo["p99_s"]:
        if probe.attempt_timeout_s is None:
            msg = ("2 % of calls take 3 s and your attempts wait for them: a slow call should be "
                   "cut off and retried.")
            hint = "Set attempt_timeout_s (e.g. 0.25 s; a healthy call takes 20 ms)."
        else:
            msg = "your attempts and waits add up to more than the 1-s latency budget."
            hint = "Shorten attempt_timeout_s, the backoff cap, or max_total_s."
        raise Wrong(f"p99 latency {normal['p99_s']:.2f} s is over {slo['p99_s']:g} s: {msg} {report}", hint)
    if normal["calls_per_payment"] > slo["calls"]:
        raise Wrong(f"you send {normal['calls_per_payment']:.2f} calls per payment on a normal "
                    f"day (SLO <= {slo['calls']:g}): retries are load too. {report}",
                    "Fewer attempts, or wait long enough that a retry lands after the burst.")
    if outage["calls_per_payment"] > slo["outage_calls"]:
        raise Wrong(f"during the outage you sent {outage['calls_per_payment']:.2f} calls per "
                    "payment to a service that is down: retries multiply the load exactly when it "
                    f"can least take it. {report}",
                    "Pass the shared `budget` to Retry (budget=budget): once most calls fail it "
                    "stops retrying, for every payment at once.")
