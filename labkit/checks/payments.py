"""Chapter 5, exercise 3 (notebooks/05_retries.ipynb): a retry policy that meets an SLO.

`payment_slo(payment_policy)` runs the exercise's simulation in virtual time (`labkit.sim`)
and returns its numbers, so a learner can try policies before checking one. The simulated
payments service keeps idempotency keys as the IETF draft "The Idempotency-Key HTTP Header
Field" says: a repeated key with the same payment replays it (no second charge); a key already
used for another payment is refused with 422. Every customer's charges are counted, so a
policy that charges someone twice, or never charges them, fails. Times are seconds as floats.
"""
from __future__ import annotations

import asyncio
import random

from labkit import sim
from labkit._core import seeding
from labkit.obs.metrics import percentile
from labkit.patterns.backoff import Constant, FullJitter, NoBackoff
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import ServiceError
from labkit.patterns.retry import Retry
from . import Wrong, exercise, plain, shown

_BUILDS_ONLY = "`payment_policy` only builds a policy: make it a normal `def`."


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
    (s), calls per payment, customers charged twice, customers never charged, and payments
    refused because their key belonged to another payment (`key_reused`); plus the retries
    the budget denied and why the policy gave up. Virtual time: about 0.2 s of wall time."""
    P = PAYMENTS

    async def main():
        loop = asyncio.get_running_loop()
        server = seeding.rng("05.payment_policy:server", seed)
        arrivals = seeding.rng("05.payment_policy:arrivals", seed)
        budget = RetryBudget(**P["budget"])
        bursts: dict[int, bool] = {}
        charges: dict[int, int] = {}
        owner: dict[str, int] = {}         # idempotency key -> the payment that first used it
        charged_keys: set = set()
        refused: set = set()               # payments refused with 422 (key of another payment)
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
            # The server did the work, whether or not the caller is still waiting; a key it
            # has seen before is replayed, not charged again.
            if key is None or key not in charged_keys:
                if key is not None:
                    charged_keys.add(key)
                charges[rid] = charges.get(rid, 0) + 1
            if not fut.done():
                fut.set_result({"payment": rid})

        def fail(fut, status, why):
            if not fut.done():
                fut.set_exception(ServiceError.from_status(status, f"payments: {status} {why}"))

        def post_payment(rid, key):
            calls[rid] = calls.get(rid, 0) + 1
            fut = loop.create_future()
            t = loop.time()
            if out_start <= t < out_end or shed(t):
                loop.call_later(P["error_latency_s"], fail, fut, 503, "unavailable")
            elif key is not None and owner.setdefault(key, rid) != rid:
                refused.add(rid)
                loop.call_later(P["error_latency_s"], fail, fut, 422,
                                "idempotency key already used for another payment")
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
            before = dict(policy.summary()["give_up_causes"])
            t0 = loop.time()
            try:
                await policy.call(post_payment, rid, policy.idempotency_key)
                ok = True
            except (ServiceError, TimeoutError):
                ok = False
            for cause, k in policy.summary()["give_up_causes"].items():
                if k > before.get(cause, 0):
                    causes[cause] = causes.get(cause, 0) + k - before.get(cause, 0)
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
                          "charged_twice": sum(1 for r in rows if charges.get(r[0], 0) > 1),
                          "never_charged": sum(1 for r in rows if not charges.get(r[0], 0)),
                          "key_reused": sum(1 for r in rows if r[0] in refused)}
        out["budget_denied"] = budget.denied
        out["give_up_causes"] = causes
        return out

    return sim.run(main, seed=seed)


def slo_report(m: dict) -> str:
    """One line with `payment_slo`'s numbers against the SLO; a number is never shown on the
    other side of its objective (98.95 % prints as 98.95 %, not 99.0 %)."""
    s, n, o = PAYMENTS["slo"], m["normal"], m["outage"]
    return (f"normal day: {shown(n['success'], s['success'], percent=True)} succeeded (SLO >= "
            f"{s['success']:.0%}), p99 {shown(n['p99_s'], s['p99_s'])} s (<= {s['p99_s']:g} s), "
            f"{shown(n['calls_per_payment'], s['calls'])} calls per payment (<= {s['calls']:g}), "
            f"{n['charged_twice']} charged twice (SLO 0); outage: "
            f"{shown(o['calls_per_payment'], s['outage_calls'])} calls per payment "
            f"(<= {s['outage_calls']:g}).")


def _first_wait_s(policy: Retry) -> float:
    """Mean of the first backoff wait (what an immediate retry looks like)."""
    b = policy.backoff
    if isinstance(b, NoBackoff):
        return 0.0
    r = random.Random(0)
    return sum(b.delay(1, r, None) for _ in range(200)) / 200


def _count(causes: dict, fragment: str) -> int:
    return sum(k for cause, k in causes.items() if fragment in cause)


def _why_payments_fail(policy_for, probe: Retry, given: RetryBudget, m: dict) -> tuple[str, str]:
    """(message, hint) for a policy whose payments succeed too rarely: the cause the run
    shows (why its calls gave up), not a guess."""
    P, causes = PAYMENTS, m["give_up_causes"]
    healthy_ms = P["latency_s"] * 1000
    if _count(causes, "not idempotent"):
        return ("your policy never retried: Retry refuses to repeat a POST that has no "
                "idempotency key (rightly: it might charge twice).",
                "Give it the key: `Retry(method='POST', idempotency_key=idempotency_key, ...)`.")
    if probe.max_attempts == 1:
        return ("max_attempts=1 means no retries, and one call in five fails.",
                "How many attempts make 0.22 ** n < 1 %?")
    if probe.attempt_timeout_s is not None and probe.attempt_timeout_s <= P["latency_s"]:
        return (f"every attempt timed out: attempt_timeout_s={probe.attempt_timeout_s:g} s is "
                f"not longer than a healthy call (about {healthy_ms:.0f} ms), so no call can "
                "finish, whatever the retries.",
                "Times are seconds: a healthy call takes 0.02 s; cut only the slow ones "
                "(e.g. attempt_timeout_s=0.25).")
    first_s = _first_wait_s(probe)
    if first_s >= probe.max_total_s:
        return (f"your backoff's first wait is about {first_s:.3g} s on average, far longer "
                f"than max_total_s={probe.max_total_s:g} s, so the policy gives up instead of "
                "waiting: it never retries. Backoff times are seconds, not milliseconds.",
                "FullJitter(base=0.05, cap=1.0): waits of up to 0.1, 0.2, 0.4 s.")
    if first_s < 0.01 or isinstance(probe.backoff, Constant) and probe.backoff.base < 0.02:
        return ("your retries go out within a few milliseconds, inside the same 20-ms burst "
                "of 503s, and fail again.",
                "Back off with jitter, e.g. FullJitter(base=0.05, cap=1.0): waits of up to 100, "
                "200, 400 ms.")
    if probe.budget is not None and probe.budget is not given and _count(causes, "budget"):
        again = plain(policy_for("probe-2", given), _BUILDS_ONLY)
        per_payment = getattr(again, "budget", None) is not probe.budget
        shared = ("a budget made for each payment is shared with no other payment, so it "
                  "cannot see an outage" if per_payment else
                  "it is not the one sized for this service")
        return (f"your policy has a retry budget of its own: it denied "
                f"{_count(causes, 'budget')} retries ('retry budget exhausted') on a service "
                f"that fails 20 % of the time, and {shared}. Use the budget you are given, "
                "not one of your own.",
                "`Retry(..., budget=budget)`: the client's shared budget, sized for this service.")
    cut = _count(causes, "during an attempt")
    wait_passes = _count(causes, "next wait would pass")
    used_up = _count(causes, "max_attempts")
    biggest = max(cut, wait_passes, used_up)
    if biggest and cut == biggest:
        per = "no attempt timeout" if probe.attempt_timeout_s is None else \
            f"attempt_timeout_s={probe.attempt_timeout_s:g} s"
        return (f"max_total_s={probe.max_total_s:g} s ran out during an attempt {cut} times: "
                f"with {per}, a slow call (3 s) uses up the whole max_total_s, so there is no "
                "time left to retry it.",
                "Cut slow attempts well inside max_total_s: attempt_timeout_s=0.25 (seconds; a "
                "healthy call takes 0.02 s).")
    if biggest and wait_passes == biggest:
        return (f"{wait_passes} payments gave up because the next backoff wait would pass "
                f"max_total_s={probe.max_total_s:g} s (first waits about {first_s:.2g} s on "
                "average): the waits leave no room for the attempts.",
                "Shorter waits, e.g. FullJitter(base=0.05, cap=1.0), or a longer max_total_s "
                "within the 1-s p99 objective.")
    if probe.max_attempts < 4:
        return (f"not enough attempts get through: with max_attempts={probe.max_attempts}, "
                f"{used_up} payments used them all. One call fails about 22 % of the time "
                "(20 % bursts of 503 plus 2 % slow calls cut by your timeout).",
                "All n attempts fail about 0.22 ** n of the time: choose n (max_attempts) so "
                "that this is below 1 %, and let max_total_s allow them.")
    return (f"payments gave up: {', '.join(f'{k} × {c}' for c, k in causes.items()) or 'none'}.",
            "Compare with the reference numbers: 4 attempts of at most 0.25 s, full-jitter waits "
            "(base 0.05 s), the shared budget.")


@exercise("05.payment_policy", reference=payment_policy, title="Exercise 3 · payment_policy",
          hint="Retry(method='POST', idempotency_key=idempotency_key, max_attempts=4, "
               "attempt_timeout_s=0.25, backoff=FullJitter(base=0.05, cap=1.0), budget=budget)")
def check_payment_policy(impl) -> None:
    given = RetryBudget(**PAYMENTS["budget"])
    probe = plain(impl("probe", given), _BUILDS_ONLY)
    if not isinstance(probe, Retry):
        raise Wrong(f"`payment_policy` returned {probe!r}; return a labkit.patterns.retry.Retry(...) for "
                    "one payment.", "`return Retry(method='POST', idempotency_key=idempotency_key, ...)`")
    if probe.method != "POST":
        raise Wrong(f"your policy says method={probe.method!r}, but the exercise is one POST "
                    "/payments: build it with method='POST', so that Retry knows a repeat is "
                    "only safe with the idempotency key (a GET is repeated freely).",
                    "`Retry(method='POST', idempotency_key=idempotency_key, ...)`")
    m = payment_slo(impl)
    slo, normal, outage = PAYMENTS["slo"], m["normal"], m["outage"]
    report = slo_report(m)
    if normal["charged_twice"]:
        raise Wrong(f"{normal['charged_twice']} customers were charged twice. A POST that timed "
                    "out may still have been done (the slow calls were), and your policy sent it "
                    f"again without its idempotency key. {report}",
                    "Pass `idempotency_key=idempotency_key` to Retry (it is sent with every "
                    "attempt, so the service does the payment once); never mark a POST "
                    "idempotent=True without one.")
    if normal["key_reused"]:
        raise Wrong(f"{normal['key_reused']} customers were charged 0 times: their payments "
                    "carried an idempotency key that another payment had already used, so the "
                    "service refused them (422, as the IETF Idempotency-Key draft says for a key "
                    "reused with a different request). Each payment needs its own key. "
                    f"{report}",
                    "Pass the key you are given: `Retry(..., idempotency_key=idempotency_key)`.")
    if normal["success"] < slo["success"]:
        msg, hint = _why_payments_fail(impl, probe, given, m)
        raise Wrong(f"{msg} {report}", hint)
    if normal["p99_s"] > slo["p99_s"]:
        if probe.attempt_timeout_s is None:
            msg = ("2 % of calls take 3 s and your attempts wait for them: a slow call should be "
                   "cut off and retried.")
            hint = "Set attempt_timeout_s (e.g. 0.25 s; a healthy call takes 20 ms)."
        else:
            msg = "your attempts and waits add up to more than the 1-s latency budget."
            hint = "Shorten attempt_timeout_s, the backoff cap, or max_total_s."
        raise Wrong(f"p99 latency {shown(normal['p99_s'], slo['p99_s'])} s is over "
                    f"{slo['p99_s']:g} s: {msg} {report}", hint)
    if normal["calls_per_payment"] > slo["calls"]:
        raise Wrong(f"you send {shown(normal['calls_per_payment'], slo['calls'])} calls per "
                    f"payment on a normal day (SLO <= {slo['calls']:g}): retries are load too. "
                    f"{report}",
                    "Fewer attempts, or wait long enough that a retry lands after the burst.")
    if outage["calls_per_payment"] > slo["outage_calls"]:
        sent = shown(outage["calls_per_payment"], slo["outage_calls"])
        raise Wrong(f"during the outage you sent {sent} calls per payment to a service that is "
                    "down: retries multiply the load exactly when it "
                    f"can least take it. {report}",
                    "Pass the shared `budget` to Retry (budget=budget): once most calls fail it "
                    "stops retrying, for every payment at once.")
