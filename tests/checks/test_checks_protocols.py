"""Chapter 3's checks, exercises 1-2 (labkit/checks/protocols.py): the references pass run
after run, each known-wrong answer is rejected for its own reason, unusual right answers pass,
the untouched skeleton gets the standard message, and the tables agree with labkit's."""

import pytest

from labkit import checks
from labkit.checks import evaluate, exercises_for
from labkit.checks import protocols as ch3
from labkit.protocols.recommend import TutorialProtocolComparison
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import RIGHT, WRONG

MINE = ("03.score_protocol", "03.grpc_code_for")
WRONG3 = [w for w in WRONG if w[0] in MINE]
RIGHT3 = [r for r in RIGHT if r[0] in MINE]
WHY_SOURCE = {what: source for _, what, source in WRONG3}

#: The exercise cells of the notebook (tagged exercise:<name>), as the learner first sees them.
SKELETONS = {
    "03.score_protocol": '''
def score_protocol(requirements, grades):
    """How well one protocol fits: the sum of its grades for the requirements set to True.
    `requirements` maps a requirement to True/False; `grades` maps a requirement to 0..3 for
    this protocol. False means "does not matter here"; a requirement without a grade adds 0."""
    # your code here
    raise NotImplementedError
''',
    "03.grpc_code_for": '''
def grpc_code_for(http_status):
    """The gRPC status code name (a str such as "UNAVAILABLE") a gRPC client reports when a
    proxy answered its call with a plain HTTP error status (400-599) and no grpc-status, as in
    gRPC's documented HTTP-to-gRPC mapping."""
    # your code here
    raise NotImplementedError
''',
}


def test_exercises_one_and_two_of_chapter_3_come_first():
    ids = [ex.id for ex in exercises_for("03")]
    assert ids[:2] == list(MINE)
    assert all(ex.title and ex.hint for ex in exercises_for("03") if ex.id in MINE)


def test_every_exercise_has_known_wrong_and_right_answers():
    for ex_id in MINE:
        assert sum(w[0] == ex_id for w in WRONG3) >= 6, ex_id
        assert sum(r[0] == ex_id for r in RIGHT3) >= 2, ex_id


@pytest.mark.parametrize("ex_id", MINE)
def test_reference_passes_three_runs_in_a_row(run, ex_id):
    for _ in range(3):
        result = run(evaluate(ex_id, checks.EXERCISES[ex_id].reference))
        assert result.passed, result.message


def test_inputs_vary_from_run_to_run(run):
    seen = []

    def spy(requirements, grades):
        seen.append(tuple(requirements.items()))
        return ch3.score_protocol(requirements, grades)
    assert run(evaluate("03.score_protocol", spy)).passed
    first, seen[:] = list(seen), []
    assert run(evaluate("03.score_protocol", spy)).passed
    assert first != seen


def test_the_tutorials_scoring_rule_is_rejected_with_the_tutorials_name_for_it(run):
    # The tutorial's rule, as one protocol's score: present keys count, whatever their value.
    def tutorial_rule(requirements, grades):
        return sum(g for k, g in grades.items() if k in requirements)
    result = run(evaluate("03.score_protocol", tutorial_rule))
    assert not result.passed and "the source tutorial's bug" in result.message
    # ...and that bug is what turns the tutorial's first scenario into websocket.
    assert TutorialProtocolComparison().recommend_protocol(
        {"low_latency": True, "high_throughput": True, "high_reliability": True,
         "browser_client": False}) == "websocket"


def test_a_wrong_answer_sees_the_exact_inputs_it_is_told_about(run):
    # The message quotes the requirements and grades it used: check they are the real ones.
    calls = []

    def off_by_one(requirements, grades):
        calls.append((dict(requirements), dict(grades)))
        return ch3.score_protocol(requirements, grades) + 1
    result = run(evaluate("03.score_protocol", off_by_one))
    req, gr = calls[0]
    assert not result.passed
    assert f"expected {ch3.score_protocol(req, gr)}" in result.message
    assert all(repr(k) in result.message for k in req)


def test_documented_table_matches_grpc_doc_and_labkit_errors():
    # grpc/grpc doc/http-grpc-status-mapping.md
    assert ch3.DOCUMENTED == {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                              404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
                              503: "UNAVAILABLE", 504: "UNAVAILABLE"}
    assert all(ch3.grpc_code_for(s) == ch3.DOCUMENTED.get(s, "UNKNOWN") for s in range(100, 600))
    errors = pytest.importorskip("labkit.patterns.errors")
    table = getattr(errors, "HTTP_TO_GRPC", None)
    if table is None:
        pytest.skip("labkit.patterns.errors.HTTP_TO_GRPC not there yet (G1)")
    names = {s: (c if isinstance(c, str) else getattr(c, "name", c)) for s, c in table.items()}
    assert names == ch3.DOCUMENTED


def test_every_status_in_4xx_and_5xx_is_checked(run):
    asked = []

    def spy(http_status):
        asked.append(http_status)
        return ch3.grpc_code_for(http_status)
    assert run(evaluate("03.grpc_code_for", spy)).passed
    assert sorted(asked) == list(range(400, 600))
    assert asked[:8] == list(ch3.DOCUMENTED)


def test_a_keyerror_blames_the_dict_the_key_is_missing_from(run):
    # requirements[key] over the grades: the key is missing from `requirements`, so the
    # grades.get advice (right for grades[key]) would be wrong here.
    loops_grades = _define(WHY_SOURCE["requirements[key] while looping over the grades"])
    message = run(evaluate("03.score_protocol", loops_grades)).message
    assert "is not in `requirements`" in message and "requirements.get(key, False)" in message
    assert "grades.get" not in message
    no_default = _define(WHY_SOURCE["grades[key] without a default"])
    message = run(evaluate("03.score_protocol", no_default)).message
    assert "grades.get(key, 0)" in message and "not in `requirements`" not in message


def test_a_keyerror_in_grpc_code_for_names_the_status(run):
    def missing_401(http_status):
        table = dict(ch3.DOCUMENTED)
        del table[401]
        return table.get(http_status, "UNKNOWN") if http_status != 401 else table[401]
    message = run(evaluate("03.grpc_code_for", missing_401)).message
    assert message.startswith("for HTTP 401 your grpc_code_for raised KeyError: 401")
    assert "'UNAUTHENTICATED'" in message and "UNKNOWN" not in message


def test_a_non_str_answer_is_told_what_to_return_without_a_false_reason(run):
    import enum
    Code = enum.Enum("Code", [(name, i) for i, name in enumerate(
        sorted(set(ch3.DOCUMENTED.values()) | {"UNKNOWN"}))])

    def as_enum(http_status):
        return Code[ch3.grpc_code_for(http_status)]
    message = run(evaluate("03.grpc_code_for", as_enum)).message
    assert "an enum member whose name is 'INTERNAL'" in message and "(its .name)" in message
    for ex_id, what, source in WRONG3:
        assert "compares names" not in run(evaluate(ex_id, _define(source, ex_id))).message


def test_sys_exit_in_an_answer_is_feedback_not_the_end_of_the_check(run):
    def score_protocol(requirements, grades):
        import sys
        sys.exit(1)
    result = run(evaluate("03.score_protocol", score_protocol))
    assert not result.passed and "raised SystemExit" in result.message


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS, runs=3)
