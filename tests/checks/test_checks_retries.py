"""Chapter 5's checks (labkit/checks/retries.py): the references pass, each known-wrong answer
is rejected for the right reason (in the learner's terms), and feedback comes in steps."""
import functools
import random

import pytest

from labkit import checks
from labkit.checks import check, evaluate, exercises_for, solution
from labkit.checks import shown
from labkit.checks.retries import (PAYMENTS, full_jitter, half_open_decision, payment_policy,
                                   payment_slo, slo_report)
from test_checks_sync import _define
from wrong_answers import WHY, WRONG

CHAPTER5 = [w for w in WRONG if w[0].startswith("05.")]

def test_three_exercises_in_order():
    assert [ex.id for ex in exercises_for("05")] == [
        "05.full_jitter", "05.half_open_decision", "05.payment_policy"]
    assert all(ex.tag == f"exercise:{ex.name}" for ex in exercises_for("05"))


@pytest.mark.parametrize("ex", exercises_for("05"), ids=lambda ex: ex.id)
def test_reference_passes(run, ex):
    assert run(evaluate(ex.id, ex.reference)).passed


@pytest.mark.parametrize("ex_id, what, source", CHAPTER5, ids=[w for _, w, _ in CHAPTER5])
def test_wrong_answer_is_rejected_for_its_reason(run, ex_id, what, source):
    result = run(evaluate(ex_id, _define(source, ex_id)))
    assert not result.passed
    assert WHY[what] in result.message, result.message
    assert result.hint
    assert "the check gave up" not in result.message


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


def test_half_open_early_decisions_are_treated_alike(run):
    # Deciding before every trial is in is accepted exactly when the outstanding trials can
    # no longer change the verdict, in both directions; otherwise rejected, in both directions.
    def early(admitted, results, permitted, threshold_pct, *, when_certain, direction):
        failures = results.count(False)
        if direction == "open":
            decide = 100 * failures / permitted >= threshold_pct if when_certain else failures > 0
        else:
            worst = failures + permitted - len(results)
            decide = 100 * worst / permitted < threshold_pct if when_certain else \
                len(results) > failures
        if decide and len(results) < permitted:
            return direction
        return half_open_decision(admitted, results, permitted, threshold_pct)
    for direction in ("open", "closed"):
        certain = functools.partial(early, when_certain=True, direction=direction)
        assert run(evaluate("05.half_open_decision", certain)).passed, direction
        guess = functools.partial(early, when_certain=False, direction=direction)
        result = run(evaluate("05.half_open_decision", guess))
        assert not result.passed and "could still" in result.message, result.message


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
    ex.reset_attempts()
    wrong = _define(CHAPTER5[0][2])
    outs = []
    for wrong in [_define(src, ex_id) for ex_id, _, src in CHAPTER5 if ex_id == ex.id][:3]:
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


def test_slo_numbers_are_never_shown_on_the_wrong_side_of_the_objective():
    m = {"normal": {"success": 0.98952, "p99_s": 1.004, "calls_per_payment": 1.4004,
                    "charged_twice": 0},
         "outage": {"calls_per_payment": 1.5002}}
    line = slo_report(m)
    assert "98.95 %" in line and "99.0 %" not in line
    assert "1.004 s" in line and "1.40 calls" not in line and "1.50 calls" not in line
    assert shown(0.99, 0.99, percent=True) == "99.0 %"
    assert shown(0.98999, 0.99, percent=True) == "98.999 %"


def test_payment_slo_counts_charges_per_customer():
    same_key = _define([src for _, what, src in WRONG
                        if what == "the same idempotency key for every payment"][0],
                       "05.payment_policy")
    m = payment_slo(same_key)
    n = m["normal"]
    assert n["charged_twice"] == 0
    assert n["never_charged"] == n["payments"] - 1        # one key: only one charge in all
    assert n["key_reused"] > n["payments"] / 2            # refused: the key was another's
    ref = payment_slo(payment_policy)["normal"]
    assert ref["key_reused"] == 0 and ref["never_charged"] < 0.01 * ref["payments"]
