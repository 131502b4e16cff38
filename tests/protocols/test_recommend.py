"""The protocol recommender (labkit/protocols/recommend.py): the tutorial's class keeps its bugs
(the lesson), and `recommend` gets the tutorial's own scenarios and others right, honours
False, explains what decided it, breaks ties deterministically and refuses bad input."""
import itertools

import pytest

from labkit.protocols.recommend import (PREFERENCE, PROTOCOLS, REQUIREMENTS, Recommendation,
                                        TutorialProtocolComparison, recommend)

#: The tutorial's own two scenarios, as it wrote them.
SCENARIO_1 = {"low_latency": True, "high_throughput": True, "high_reliability": True,
              "browser_client": False}          # internal high-performance calls: "grpc"
SCENARIO_2 = {"browser_client": True, "needs_caching": True, "low_latency": False,
              "high_reliability": True}         # a public API: "http_rest"


def test_the_tutorials_recommender_answers_websocket_for_its_own_grpc_scenario():
    tutorial = TutorialProtocolComparison()
    assert tutorial.recommend_protocol(SCENARIO_1) == "websocket"      # not the promised grpc
    assert tutorial.recommend_protocol(SCENARIO_2) == "http_rest"      # right, by luck
    # Its bugs, one at a time: False counts as wanted...
    assert tutorial.recommend_protocol({"browser_client": False}) == \
        tutorial.recommend_protocol({"browser_client": True}) == "http_rest"
    # ...and async_processing never scores (a list compared with a string).
    assert tutorial.recommend_protocol({"async_processing": True}) == "http_rest"


def test_the_tutorials_scenarios_get_the_answers_the_tutorial_meant():
    one, two = recommend(SCENARIO_1), recommend(SCENARIO_2)
    assert one.protocol == "grpc" and two.protocol == "http_rest"
    assert one.scores == {"http_rest": 5, "grpc": 8, "websocket": 6, "message_queue": 6}
    assert one.runner_up == "websocket"          # the tie at 6 goes to the simpler one
    assert one.decided_by == ("high_throughput", "high_reliability")
    assert two.scores["grpc"] is None and two.scores["message_queue"] is None
    assert "low_latency" not in two.decided_by   # False was honoured
    assert two.decided_by[0] == "browser_client" and "needs_caching" in two.decided_by


@pytest.mark.parametrize("requirements, protocol", [
    ({"browser_client": True, "live_updates": True}, "websocket"),
    ({"async_processing": True, "high_reliability": True}, "message_queue"),
    ({"async_processing": True}, "message_queue"),
    ({"browser_client": True, "needs_caching": True}, "http_rest"),
    ({"low_latency": True, "high_throughput": True}, "grpc"),
    ({"live_updates": True, "low_latency": True}, "websocket"),
])
def test_more_scenarios(requirements, protocol):
    assert recommend(requirements).protocol == protocol


def test_false_is_the_same_as_not_asking():
    for key in REQUIREMENTS:
        for base in (SCENARIO_1, SCENARIO_2, {}):
            without = {k: v for k, v in base.items() if k != key}
            assert recommend({**without, key: False}) == recommend(without)


def test_every_combination_gets_an_answer_that_is_a_best_score():
    for values in itertools.product((None, False, True), repeat=len(REQUIREMENTS)):
        req = {k: v for k, v in zip(REQUIREMENTS, values) if v is not None}
        rec = recommend(req)
        allowed = {p: s for p, s in rec.scores.items() if s is not None}
        assert rec.scores[rec.protocol] == max(allowed.values())
        ties = [p for p in PREFERENCE if allowed.get(p) == rec.scores[rec.protocol]]
        assert rec.protocol == ties[0]                      # documented tie-break
        if req.get("browser_client"):
            assert rec.protocol in ("http_rest", "websocket")
        assert all(req.get(k) is True for k in rec.decided_by)
        assert recommend(dict(reversed(list(req.items())))) == rec   # order does not matter


def test_ties_and_nothing_asked_go_to_the_simplest():
    rec = recommend({})
    assert rec.protocol == "http_rest" and rec.decided_by == ()
    assert rec.reasons == ("nothing was asked for: the simplest protocol",)
    assert recommend({"high_reliability": True}).protocol == "message_queue"   # 3 beats 2, 2
    tie = recommend({"low_latency": True})              # grpc 3 == websocket 3
    assert tie.protocol == "grpc" and tie.runner_up == "websocket"
    assert any("tie with websocket" in r for r in tie.reasons)


def test_the_reasons_name_what_decided_it():
    rec = recommend({"browser_client": True, "live_updates": True})
    text = str(rec)
    assert text.startswith("websocket: ")
    assert "browser_client" in text and "live_updates: websocket 3/3 vs http_rest 0/3" in text
    assert isinstance(rec, Recommendation)


def test_grades_table_covers_every_graded_requirement():
    graded = set(REQUIREMENTS) - {"browser_client"}
    assert set(PROTOCOLS) == set(PREFERENCE)
    assert all(set(g) == graded and all(0 <= v <= 3 for v in g.values())
               for g in PROTOCOLS.values())


@pytest.mark.parametrize("bad, words", [
    ({"low_latancy": True}, ["unknown keys", "'low_latancy'"]),
    ({"low_latency": True, "realtime": True, "cheap": False}, ["'cheap'", "'realtime'"]),
    ({"low_latency": "yes"}, ["requirements['low_latency']", "True or False", "'yes'"]),
    ({"low_latency": 1}, ["requirements['low_latency']", "True or False"]),
    ({"browser_client": None}, ["requirements['browser_client']"]),
    ([("low_latency", True)], ["requirements must be a dict"]),
    ("low_latency", ["requirements must be a dict"]),
])
def test_bad_requirements_are_a_clear_value_error(bad, words):
    with pytest.raises(ValueError) as err:
        recommend(bad)
    assert all(w in str(err.value) for w in words), str(err.value)
