"""Chapter 7's checks (labkit/checks/obs_*.py): the references pass run after run, each known-
wrong answer is rejected for its own reason, unusual right answers pass, the untouched skeleton
gets the standard message, inputs vary per run, and the messages stay true for what they show."""
import random

import pytest

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import observability  # noqa: F401  (registers chapter 7's exercises in order)
from labkit.checks import obs_critical_path as cp
from labkit.checks import obs_sampling as samp
from labkit.checks import obs_trace_cases as tc
from labkit.checks import obs_traceparent as tpc
from labkit.obs import critical_path as lib_cp
from labkit.obs.traceparent import parse_traceparent as labkit_parse
from labkit.obs.tracing import SpanRecord
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import RIGHT, WHY, WRONG

MINE = ("07.parse_traceparent", "07.slowest_on_critical_path", "07.keep_trace")   # notebook order
WRONG7 = [w for w in WRONG if w[0] in MINE]
RIGHT7 = [r for r in RIGHT if r[0] in MINE]

#: The exercise cells of the notebook (tagged exercise:<name>), as the learner first sees them.
SKELETONS = {
    "07.parse_traceparent": '''
def parse_traceparent(header):
    """(version, trace_id, parent_id, flags): the four fields of a W3C traceparent header, as
    the strings they are in the header; None if `header` is None or invalid."""
    # your code here
    raise NotImplementedError
''',
    "07.slowest_on_critical_path": '''
def slowest_on_critical_path(spans):
    """The span_id of the span on the critical path with the largest self time."""
    # your code here
    raise NotImplementedError
''',
    "07.keep_trace": '''
def keep_trace(spans, slow_ms, spans_left):
    """True to store this finished trace: always if a span failed or it took longer than
    slow_ms end to end; otherwise only if len(spans) <= spans_left."""
    # your code here
    raise NotImplementedError
''',
}


def test_three_exercises_in_chapter_order_with_titles_and_hints():
    assert [ex.id for ex in checks.exercises_for("07")] == list(MINE)
    assert all(ex.title and ex.hint for ex in checks.exercises_for("07"))
    assert [ex.title.split(" · ")[0] for ex in checks.exercises_for("07")] == \
        ["Exercise 1", "Exercise 2", "Exercise 3"]


def test_every_exercise_has_known_wrong_and_right_answers():
    for ex_id in MINE:
        assert sum(w[0] == ex_id for w in WRONG7) >= 7, ex_id
        assert sum(r[0] == ex_id for r in RIGHT7) >= 2, ex_id
    assert {what for _, what, _ in WRONG7} <= set(WHY)


@pytest.mark.parametrize("ex_id", MINE)
def test_reference_passes_three_runs_in_a_row(run, ex_id):
    for _ in range(3):
        result = run(evaluate(ex_id, checks.EXERCISES[ex_id].reference))
        assert result.passed, result.message


@pytest.mark.parametrize("ex_id", MINE)
def test_inputs_vary_from_run_to_run(run, ex_id):
    seen = []
    ref = checks.EXERCISES[ex_id].reference

    def spy(*args):
        seen.append(repr(args))
        return ref(*args)
    assert run(evaluate(ex_id, spy)).passed
    first, seen[:] = list(seen), []
    assert run(evaluate(ex_id, spy)).passed
    assert first != seen


def test_the_first_wrong_answer_of_each_exercise_is_the_notebook_one():
    firsts = {}
    for ex_id, what, _ in WRONG7:
        firsts.setdefault(ex_id, what)
    assert firsts == {"07.parse_traceparent": "traceparent: string.hexdigits (accepts uppercase)",
                      "07.slowest_on_critical_path":
                          "critical path: longest span by total duration",
                      "07.keep_trace": "keep_trace: errors sampled like the rest"}


@pytest.mark.parametrize("seed", range(8))
def test_traceparent_cases_agree_with_labkits_parser(seed):
    cases = tpc._cases(random.Random(seed))
    assert sum(want is None for _, want, _ in cases) >= 15
    assert sum(want is not None for _, want, _ in cases) >= 6
    for header, want, _ in cases:
        assert tpc.parse_traceparent(header) == want, header
        parsed = labkit_parse(header)
        assert (parsed is None) == (want is None), header
        if parsed is not None:
            assert (parsed.trace_id, parsed.parent_id, parsed.flags) == \
                (want[1], want[2], int(want[3], 16))


@pytest.mark.parametrize("seed", range(6))
def test_critical_path_cases_have_one_answer_and_tell_every_mistake(seed):
    cases = tc.draw_cases(random.Random(seed), cp.slowest_on_critical_path)
    told, roots, outliving, detached_subtrees, deep_outliving = set(), 0, 0, 0, 0
    for spans, want in cases:
        assert lib_cp.slowest_on_critical_path(spans).span_id == want
        assert cp.slowest_on_critical_path(spans) == want
        tree = lib_cp.build_tree(spans)
        roots += want == tree.root.span_id
        outliving += any(n.span.end_s > n.end_s for n in tree.nodes.values())
        detached_subtrees += any(n.after_parent and n.children for n in tree.nodes.values())
        deep_outliving += any(n.span.end_s > n.end_s and n.depth >= 2 and not n.after_parent
                              for n in tree.nodes.values())
        told |= {k for k, v in tc.mistakes(spans).items() if v != want}
    assert told == set(tc.MISTAKE_ORDER)
    assert roots >= 1 and outliving >= 2       # the root can be the answer; clipping matters
    assert detached_subtrees >= 1 and deep_outliving >= 1    # not only leaves run on


@pytest.mark.parametrize("seed", range(4))
def test_each_critical_path_mistake_is_told_on_two_traces_at_least(seed):
    cases = tc.draw_cases(random.Random(seed), cp.slowest_on_critical_path)
    per_case = [tc.mistakes(spans) for spans, _ in cases]
    for name in tc.MISTAKE_ORDER:
        assert sum(m[name] != want for m, (_, want) in zip(per_case, cases)) >= 2, name


@pytest.mark.parametrize("seed", range(30))
def test_library_and_reference_agree_on_random_traces_with_outliving_children(seed):
    spans = tc.trace(random.Random(seed))
    tree = lib_cp.build_tree(spans)
    assert cp.slowest_on_critical_path(spans) in {
        sid for sid, n in tree.nodes.items()
        if sid in lib_cp.critical_path(tree) and
        n.self_s == max(tree.nodes[x].self_s for x in lib_cp.critical_path(tree).critical_s)}
    path = lib_cp.critical_path(tree)
    assert sum(path.critical_s.values()) == pytest.approx(tree.root.span.duration_s)
    for sid, on_path_s in path.critical_s.items():         # all its self time is on the path
        assert tree.nodes[sid].self_s <= on_path_s + 1e-9
    assert all(n.self_s == 0 for n in tree.nodes.values() if n.after_parent)


def test_the_testers_outliving_traces_agree_everywhere():
    def sp(i, p, a, b):
        return SpanRecord("0" * 31 + "1", i, p, i, "svc", "internal", a / 1000, b / 1000, "ok",
                          {}, ())
    t1 = [sp("root", None, 0, 60), sp("A", "root", 5, 50), sp("pub", "root", 50, 52),
          sp("consumer", "pub", 51, 200)]
    t2 = [sp("root", None, 0, 100), sp("B", "root", 10, 80), sp("C", "B", 75, 130)]
    # round 2: a call detached by 200 ms with a call of its own; an outliving call whose own
    # call runs past the root's end too (clipped to B's clipped window, not B's own end)
    t3 = [sp("root", None, 0, 100), sp("A", "root", 10, 95), sp("D", "root", 300, 400),
          sp("E", "D", 320, 350)]
    t4 = [sp("root", None, 0, 100), sp("B", "root", 10, 150), sp("C", "B", 20, 40),
          sp("C2", "B", 95, 160)]
    for trace, want in ((t1, "A"), (t2, "B"), (t3, "A"), (t4, "B")):
        assert cp.slowest_on_critical_path(trace) == want
        assert lib_cp.slowest_on_critical_path(trace).span_id == want
    assert lib_cp.self_times(t1)["consumer"] == pytest.approx(0.001)   # clipped at pub's end
    assert lib_cp.self_times(t4)["B"] == pytest.approx(0.065)
    assert {n.span_id for n in lib_cp.build_tree(t3).nodes.values() if n.after_parent} == \
        {"D", "E"}


def test_the_critical_path_messages_state_true_facts(run):
    source = next(s for e, w, s in WRONG7 if w == "critical path: largest self time, path ignored")
    result = run(evaluate("07.slowest_on_critical_path",
                          _define(source, "07.slowest_on_critical_path")))
    mine = result.message.split("for this trace it returned '", 1)[1].split("'", 1)[0]
    assert f"{mine} (" in result.message and "is not on the critical path" in result.message
    assert "<- yours" in result.message and "<- expected" in result.message


def test_keep_trace_window_covers_every_kind_of_trace(run):
    kinds = []

    def spy(spans, slow_ms, spans_left):
        got = samp.keep_trace(spans, slow_ms, spans_left)
        kinds.append((len(spans), spans_left, got))
        return got
    assert run(evaluate("07.keep_trace", spy)).passed
    assert any(n == left for n, left, _ in kinds)                # an exact fit
    assert any(0 < left < n and not got for n, left, got in kinds)   # too big for what is left
    assert any(left == 0 and got for n, left, got in kinds)      # errors/slow after the budget


def test_keep_trace_refuses_a_non_boolean_answer(run):
    result = run(evaluate("07.keep_trace", lambda spans, slow_ms, spans_left: "yes"))
    assert not result.passed and "return True" in result.message


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS, runs=3)
