"""Chapter 4's checks (labkit/checks/serialization.py): the references pass run after run, each
known-wrong answer is rejected for its own reason, unusual right answers pass, the untouched
skeleton gets the standard message, and an answer that loops is stopped by the guard."""
import copy
import json
import time

import pytest

from labkit import checks
from labkit.checks import evaluate
from labkit.checks import serialization as ch4   # importing it registers chapter 4's exercises
from check_corpus import corpus_tests
from test_checks_sync import _define
from wrong_answers import BLOCKING, RIGHT, WHY, WRONG

MINE = ("04.to_json_default", "04.migration_path", "04.choose_format")   # notebook order
WRONG4 = [w for w in WRONG if w[0] in MINE]
RIGHT4 = [r for r in RIGHT if r[0] in MINE]
BLOCKING4 = [b for b in BLOCKING if b[0] in MINE]

#: The exercise cells of the notebook (tagged exercise:<name>), as the learner first sees them.
SKELETONS = {
    "04.migration_path": '''
def migration_path(migrations, start, target):
    """The shortest list of versions from `start` to `target`, both included, where each step
    is a registered migration: `migrations` is a list of (from_version, to_version) pairs, one
    way only. [start] when start == target; raise ValueError when there is no path. Do not
    change `migrations`."""
    # your code here
    raise NotImplementedError
''',
    "04.to_json_default": '''
def to_json_default(value):
    """For json.dumps(obj, default=to_json_default): what to write for `value`, exactly as the
    table above says (aware datetime and date -> isoformat(), naive datetime -> ValueError,
    Decimal -> str, bytes -> base64 str, set -> sorted list, UUID -> str, else TypeError)."""
    # your code here
    raise NotImplementedError
''',
    "04.choose_format": '''
def choose_format(needs):
    """The format ("json", "msgpack", "protobuf", "yaml" or "avro") of the first rule in the
    table above that applies to `needs` (a dict of True/False; a missing key means False)."""
    # your code here
    raise NotImplementedError
''',
}


def test_three_exercises_in_chapter_order_with_titles_and_hints():
    assert [ex.id for ex in checks.exercises_for("04")] == list(MINE)
    assert all(ex.title and ex.hint for ex in checks.exercises_for("04"))


def test_every_exercise_has_known_wrong_and_right_answers():
    for ex_id in MINE:
        assert sum(w[0] == ex_id for w in WRONG4) >= 7, ex_id
        assert sum(r[0] == ex_id for r in RIGHT4) >= 2, ex_id
    assert {what for _, what, _ in WRONG4} <= set(WHY)


@pytest.mark.parametrize("ex_id", MINE)
def test_reference_passes_three_runs_in_a_row(run, ex_id):
    for _ in range(3):
        result = run(evaluate(ex_id, checks.EXERCISES[ex_id].reference))
        assert result.passed, result.message


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ex_id, what, source, fragment", BLOCKING4,
                         ids=[w for _, w, _, _ in BLOCKING4])
def test_an_answer_that_loops_for_ever_is_stopped_by_the_guard(run, ex_id, what, source,
                                                                fragment):
    t0 = time.monotonic()
    result = run(evaluate(ex_id, _define(source, ex_id), timeout_s=1.0, blocked_s=0.5))
    assert time.monotonic() - t0 < 40
    assert not result.passed and fragment in result.message, result.message
    assert "a loop that never ends" in result.message


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


def test_a_hard_coded_answer_fails(run):
    calls = []

    def spy(migrations, start, target):
        calls.append((list(migrations), start, target))
        return ch4.migration_path(migrations, start, target)
    run(evaluate("04.migration_path", spy))
    answers = {}
    for migrations, start, target in calls:
        answers[(tuple(migrations), start, target)] = ch4._shortest(migrations, start, target)

    def replay(migrations, start, target):          # right for the inputs of the last run only
        got = answers.get((tuple(migrations), start, target), [start])
        if got is None:
            raise ValueError("no path")
        return got
    result = run(evaluate("04.migration_path", replay))
    assert not result.passed


def test_the_tutorials_walk_is_named_and_shows_where_it_stopped(run):
    what = "the source tutorial's walk (first registered migration)"
    source = next(s for e, w, s in WRONG4 if w == what)
    result = run(evaluate("04.migration_path", _define(source, "04.migration_path")))
    assert "raised ValueError (No migration rule from version" in result.message
    assert "stops at a dead end" in result.message and " -> " in result.message


def test_the_first_wrong_answer_of_each_exercise_is_the_notebook_one():
    firsts = {}
    for ex_id, what, _ in WRONG4:
        firsts.setdefault(ex_id, what)
    assert firsts == {"04.migration_path":
                      "the source tutorial's walk (first registered migration)",
                      "04.to_json_default": "Decimal as float",
                      "04.choose_format": "`key in needs` (presence, not truth)"}


def test_migration_cases_cover_the_shapes_the_messages_talk_about():
    import random
    cases = ch4._path_cases(random.Random(7))
    kinds = {ch4._tutorial_walk(m, s, t)[0] for m, s, t in cases}
    assert kinds == {"path", "dead end", "loop"}
    assert any(ch4._shortest(m, s, t) is None for m, s, t in cases)
    assert any(s == t for m, s, t in cases)
    # a shortcut registered last: the tutorial's walk finds a path, but not the shortest
    assert any(k == "path" and len(p) > len(ch4._shortest(m, s, t))
               for m, s, t in cases for k, p in [ch4._tutorial_walk(m, s, t)])


def test_migration_path_reference_on_the_issues_examples():
    assert ch4.migration_path([("1.0", "2.0"), ("2.0", "3.0")], "1.0", "3.0") == \
        ["1.0", "2.0", "3.0"]
    assert ch4.migration_path([("1.0", "1.1"), ("1.0", "2.0"), ("2.0", "3.0")], "1.0", "3.0") \
        == ["1.0", "2.0", "3.0"]
    with pytest.raises(ValueError, match="'3.0' to '1.0'"):
        ch4.migration_path([("1.0", "2.0"), ("2.0", "1.0"), ("2.0", "3.0")], "3.0", "1.0")
    given = [("2.0", "1.0"), ("1.0", "2.0")]
    ch4.migration_path(given, "1.0", "2.0")
    assert given == [("2.0", "1.0"), ("1.0", "2.0")]


def test_the_json_values_make_each_mistake_visible():
    import random
    values = ch4._json_values(random.Random(3))
    big = values[0]
    assert repr(float(big)) != str(big)                           # a float loses digits
    sets = [v for v in values if isinstance(v, (set, frozenset))]
    assert sets and all(list(s) != sorted(s) for s in sets)       # list(s) is not sorted
    raw = next(v for v in values if isinstance(v, bytes))
    assert set("+/") & set(ch4.to_json_default(raw))              # the URL-safe alphabet differs
    assert json.dumps(values[:2], default=ch4.to_json_default).count('"') == 4   # strings


def test_choose_format_table_has_one_answer_per_case_and_never_pickle():
    import itertools
    seen = set()
    for values in itertools.product((False, True), repeat=len(ch4.KEYS)):
        needs = dict(zip(ch4.KEYS, values))
        fmt = ch4.choose_format(needs)
        assert fmt in ch4.FORMATS
        assert fmt == ch4.choose_format({k: v for k, v in needs.items() if v})
        seen.add(fmt)
    assert seen == set(ch4.FORMATS)


def test_choose_format_check_does_not_pass_on_a_dict_it_can_change(run):
    def mutates(needs):
        fmt = ch4.choose_format(needs)
        needs.clear()
        return fmt
    result = run(evaluate("04.choose_format", mutates))
    assert not result.passed and "changed its argument" in result.message


def test_importing_the_module_imports_no_codec_library():
    import subprocess
    import sys
    code = ("import sys, labkit.checks.serialization; print(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('orjson', 'cbor2', 'fastavro', 'yaml', 'msgpack', 'google', "
            "'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_a_naive_datetime_is_a_value_error_and_unknown_types_a_type_error():
    import datetime as dt
    with pytest.raises(ValueError):
        ch4.to_json_default(dt.datetime(2024, 5, 1, 12, 0))
    with pytest.raises(TypeError, match="complex"):
        json.dumps({"z": 1j}, default=ch4.to_json_default)
    naive = copy.copy(dt.datetime(2024, 5, 1))
    assert json.dumps(naive.date(), default=ch4.to_json_default) == '"2024-05-01"'


def test_a_search_round_a_cycle_is_named_at_once_not_after_the_time_limit(run):
    # a limit far above the check's usual 10 s: the message must come from the read count, not the guard
    for what in ("breadth-first without a visited set (no path, a cycle)",
                 "the tutorial's walk, skipping dead ends (loops on a downgrade)"):
        source = next(s for e, w, s in WRONG4 if w == what)
        result = run(evaluate("04.migration_path", _define(source, "04.migration_path"),
                              timeout_s=30.0))
        assert not result.passed
        assert "did not return within" not in result.message, result.message
        assert "a loop that never ends" not in result.message, result.message
        assert " -> " in result.message and "remember the versions you have visited" in \
            result.message, result.message
    no_path = next(s for e, w, s in WRONG4 if w.startswith("breadth-first without a visited"))
    result = run(evaluate("04.migration_path", _define(no_path, "04.migration_path"),
                          timeout_s=30.0))
    assert "a cycle of migrations (" in result.message and "with no path" in result.message
    cycle = result.message.split("a cycle of migrations (", 1)[1].split(")", 1)[0].split(" -> ")
    assert len(cycle) >= 3 and cycle[0] == cycle[-1], result.message


def test_the_cycle_named_is_a_real_cycle_of_the_migrations():
    assert ch4._cycle([("a", "b"), ("b", "c"), ("c", "a"), ("d", "e")], "a") == \
        ["a", "b", "c", "a"]
    assert ch4._cycle([("x", "a"), ("a", "b"), ("b", "a"), ("b", "c")], "x") == ["a", "b", "a"]
    assert ch4._cycle([("a", "b"), ("b", "c")], "a") == []


def test_the_counted_migrations_are_a_list_equal_to_the_given_one():
    counted = ch4._Counted([("1.0", "2.0"), ("2.0", "3.0")])
    assert isinstance(counted, list) and counted == [("1.0", "2.0"), ("2.0", "3.0")]
    assert repr(counted) == repr([("1.0", "2.0"), ("2.0", "3.0")])
    assert ch4.migration_path(counted, "1.0", "3.0") == ["1.0", "2.0", "3.0"]
    assert 0 < counted.reads < 10
    with pytest.raises(ch4._GoesRound):
        while True:
            for _ in counted:
                pass


def test_rule_7_is_never_said_to_apply_too_and_untrusted_input_alone_is_explained(run):
    source = next(s for e, w, s in WRONG4 if w == "json whenever untrusted_input")
    for _ in range(3):
        result = run(evaluate("04.choose_format", _define(source, "04.choose_format")))
        assert not result.passed
        assert "Rule 7" not in result.message, result.message
        assert "set to False, as if it were True" not in result.message, result.message
    for what in [w for e, w, _ in WRONG4 if e == "04.choose_format"]:
        source = next(s for e, w, s in WRONG4 if w == what)
        result = run(evaluate("04.choose_format", _define(source, "04.choose_format")))
        assert "Rule 7 (otherwise) applies too" not in result.message, (what, result.message)


def test_exercise_numbers_in_texts_follow_the_notebook():
    import labkit.checks.serialization_format as fmt
    assert "exercise 1" in ch4.to_json_default.__doc__
    assert "exercise 2" not in ch4.to_json_default.__doc__
    assert "exercise 3" in fmt.choose_format.__doc__
    titles = {ex.id: ex.title for ex in checks.exercises_for("04")}
    assert titles == {"04.to_json_default": "Exercise 1 · to_json_default",
                      "04.migration_path": "Exercise 2 · migration_path",
                      "04.choose_format": "Exercise 3 · choose_format"}
    assert ch4.choose_format is fmt.choose_format and ch4.KEYS is fmt.KEYS


(test_wrong_answer_is_rejected_for_its_reason, test_unusual_right_answer_passes,
 test_untouched_skeleton_gets_the_standard_message) = corpus_tests(MINE, SKELETONS, runs=3)
