"""Chapter 5's checks (labkit/checks/retries.py): the references pass, each known-wrong answer
is rejected for the right reason (in the learner's terms), and feedback comes in steps."""
import random

import pytest

from labkit import checks
from labkit.checks import check, evaluate, exercises_for, solution
from labkit.checks.retries import (PAYMENTS, full_jitter, half_open_decision, payment_policy,
                                   payment_slo)
from test_checks_sync import _define
from wrong_answers import WRONG

CHAPTER5 = [w for w in WRONG if w[0].startswith("05.")]

#: What each wrong answer's message must say (a fragment), so a check cannot reject an answer
#: for an unrelated reason.
WHY = {
    "the source tutorial's ±10 % jitter": "±10 % jitter",
    "no jitter at all": "every time",
    "equal jitter": "equal jitter",
    "caps after drawing": "capped after drawing",
    "draws from the global random module": "same seed gave different waits",
    "first retry already doubled": "above the ceiling",
    "unlimited trial calls in half-open": "permits are in use",
    "closes on the first success": "closing on the first success",
    "never opens again": "must open again",
    "compares a fraction with a percent": "is a percent",
    "opens only above the threshold": "At exactly the threshold",
    "no retries": "no retries",
    "POST without an idempotency key (never retried)": "never retried",
    "POST marked idempotent without a key (charges twice)": "charged twice.",
    "immediate retries": "same 20-ms burst",
    "unbounded retries, no budget": "during the outage",
    "no per-attempt timeout": "p99 latency",
}


def test_three_exercises_in_order():
    assert [ex.id for ex in exercises_for("05")] == [
        "05.full_jitter", "05.half_open_decision", "05.payment_policy"]
    assert all(ex.tag == f"exercise:{ex.name}" for ex in exercises_for("05"))


@pytest.mark.parametrize("ex", exercises_for("05"), ids=lambda ex: ex.id)
def test_reference_passes(run, ex):
    assert run(evaluate(ex.id, ex.reference)).passed


@pytest.mark.parametrize("ex_id, what, source", CHAPTER5, ids=[w for _, w, _ in CHAPTER5])
def test_wrong_answer_is_rejected_for_its_reason(run, ex_id, what, source):
    result = run(evaluate(ex_id, _define(source)))
    assert not result.passed
    assert WHY[what] in result.message, result.message
    assert result.hint


def test_full_jitter_reference_is_the_aws_formula():
    r = random.Random(3)
    draws = [full_jitter(2, 0.1, 10.0, r) for _ in range(5000)]
    assert 0 <= min(draws) < 0.01 and 0.39 < max(draws) <= 0.4
    assert abs(sum(draws) / len(draws) - 0.2) < 0.01
    assert max(full_jitter(30, 0.1, 2.0, r) for _ in range(100)) <= 2.0


def test_another_correct_full_jitter_passes(run):
    def mine(attempt, base_s, cap_s, rng):
        ceiling = base_s * 2 ** attempt
        if ceiling > cap_s:
            ceiling = cap_s
        return ceiling * rng.random()
    assert run(evaluate("05.full_jitter", mine)).passed


def test_half_open_may_open_early_once_the_outcome_is_certain(run):
    def eager(admitted, results, permitted, threshold_pct):
        failures = results.count(False)
        if 100 * failures / permitted >= threshold_pct:
            return "open"                         # cannot close any more: open at once
        return half_open_decision(admitted, results, permitted, threshold_pct)
    assert run(evaluate("05.half_open_decision", eager)).passed


def test_half_open_reference_table():
    assert half_open_decision(0, [], 3, 50) == "admit"
    assert half_open_decision(3, [True], 3, 50) == "reject"
    assert half_open_decision(3, [True, True, True], 3, 50) == "closed"
    assert half_open_decision(2, [True, False], 2, 50) == "open"


def test_payment_slo_reference_meets_every_objective_and_is_deterministic():
    slo = PAYMENTS["slo"]
    m = payment_slo(payment_policy)
    n, o = m["normal"], m["outage"]
    assert n["payments"] > 1900 and o["payments"] > 150
    assert n["success"] >= slo["success"] and n["p99_s"] <= slo["p99_s"]
    assert n["calls_per_payment"] <= slo["calls"] and n["charged_twice"] == 0
    assert o["calls_per_payment"] <= slo["outage_calls"]
    assert payment_slo(payment_policy) == m


def test_feedback_steps_and_fallback(run, capsys):
    ex = checks.EXERCISES["05.full_jitter"]
    ex.failures = 0
    wrong = _define(CHAPTER5[0][2])
    outs = []
    for _ in range(3):
        assert run(check("05.full_jitter", wrong)) is ex.reference
        outs.append(capsys.readouterr().out)
    assert "not yet" in outs[0] and "±10 %" in outs[0] and "Hint" not in outs[0]
    assert "Hint:" in outs[1] and "solution(" not in outs[1]
    assert 'solution("05.full_jitter")' in outs[2]
    mine = lambda attempt, base_s, cap_s, rng: rng.uniform(0, min(cap_s, base_s * 2 ** attempt))  # noqa: E731
    assert run(check("05.full_jitter", mine)) is mine
    assert "correct" in capsys.readouterr().out and checks.RESULTS["05.full_jitter"].passed
    solution("05.full_jitter")
    assert "rng.uniform(0.0, min(cap_s, base_s * 2 ** attempt))" in capsys.readouterr().out


def test_grade_reads_chapter_5_functions_by_name(run):
    ref = {ex.name: ex.reference for ex in exercises_for("05")}
    graded = run(checks.grade({**ref, "half_open_decision": lambda a, r, p, t: "admit"},
                              chapter="05"))
    assert [(g["exercise"], g["passed"]) for g in graded] == [
        ("05.full_jitter", True), ("05.half_open_decision", False), ("05.payment_policy", True)]
