"""One copy of the corpus tests every chapter's checks share: each known-wrong answer is
rejected for its reason (a WHY fragment in the message, with a hint, and never "the check gave
up"), each unusual right answer passes, and an untouched skeleton gets the standard message.
Each runs over several check runs, so the inputs differ. Use:

    (test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
     test_untouched_skeleton_gets_the_standard_message) = corpus_tests(IDS, SKELETONS)
"""
import inspect

import pytest

from labkit import checks
from labkit.checks import evaluate
from test_checks_sync import _define
from wrong_answers import RIGHT, WHY, WRONG


def corpus_tests(exercise_ids, skeletons: dict, *, runs: int = 3):
    wrong = [w for w in WRONG if w[0] in exercise_ids]
    right = [r for r in RIGHT if r[0] in exercise_ids]

    @pytest.mark.parametrize("ex_id, what, source", wrong, ids=[w for _, w, _ in wrong])
    def test_wrong_answer_is_rejected_for_its_reason(run, ex_id, what, source):
        for _ in range(runs):                # with the inputs of several check runs
            result = run(evaluate(ex_id, _define(source, ex_id)))
            assert not result.passed, what
            assert WHY[what] in result.message, result.message
            assert result.hint
            assert "the check gave up" not in result.message

    @pytest.mark.parametrize("ex_id, what, source", right, ids=[w for _, w, _ in right])
    def test_unusual_right_answer_passes(run, ex_id, what, source):
        for _ in range(runs):
            result = run(evaluate(ex_id, _define(source, ex_id)))
            assert result.passed, result.message

    @pytest.mark.parametrize("ex_id", list(skeletons))
    def test_untouched_skeleton_gets_the_standard_message(run, ex_id):
        skeleton = _define(skeletons[ex_id], ex_id)
        ref = checks.EXERCISES[ex_id].reference
        assert inspect.signature(skeleton) == inspect.signature(ref)
        assert inspect.iscoroutinefunction(skeleton) == inspect.iscoroutinefunction(ref)
        result = run(evaluate(ex_id, skeleton))
        assert not result.passed and result.unanswered
        assert "still raises NotImplementedError" in result.message

    return (test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
            test_untouched_skeleton_gets_the_standard_message)
