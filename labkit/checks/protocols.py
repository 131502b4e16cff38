"""Chapter 03 exercises (notebooks/03_protocols.ipynb): one rule of a protocol recommender
done right (`score_protocol`: only requirements set to True count, unlike the source tutorial's
``key in requirements``) and the documented HTTP-to-gRPC status mapping (`grpc_code_for`: what
a gRPC client concludes from a plain HTTP error answered by a proxy). Both are plain functions
checked on inputs that vary from run to run; exercise 3 (`follow_events`) is in
`labkit.checks.protocols_push`, imported at the end so it registers third.
"""
from __future__ import annotations

import copy
import numbers

from . import Wrong, exercise, plain, raised, run_rng

# ---------------------------------------------------------------------------------------------
# Exercise 1: one rule of the recommender


def score_protocol(requirements, grades):
    """How well one protocol fits: the sum of its grades for the requirements set to True.
    `requirements` maps a requirement to True/False; `grades` maps a requirement to 0..3 for
    this protocol. False means "does not matter here"; a requirement without a grade adds 0."""
    score = 0
    for key, wanted in requirements.items():
        if wanted is True:
            score += grades.get(key, 0)
    return score


_KEYS = ("low_latency", "high_throughput", "high_reliability", "needs_caching",
         "async_processing", "live_updates")
_HINT_1 = ("Loop over requirements.items(); when the value is True add grades.get(key, 0). "
           "`key in requirements` is not enough: it is True for 'low_latency': False too.")


def _cases(rng) -> list[tuple[dict, dict]]:
    """(requirements, grades) pairs, each built so that one classic mistake shows."""
    keys = list(_KEYS)
    rng.shuffle(keys)
    grades = {k: rng.randint(1, 3) for k in keys[:5]}     # keys[5] has no grade
    true_ = rng.sample(keys[:5], 2)
    grades[true_[0]] = 3                                   # so that counting != adding
    false_ = [k for k in keys[:5] if k not in true_][:2]
    cases = [
        ({k: True for k in true_} | {k: False for k in false_}, grades),  # False must not count
        ({**{k: True for k in true_}, keys[5]: True}, grades),             # no grade -> 0
        ({keys[0]: True}, {**grades, keys[0]: 0}),                         # a grade of 0
        ({}, grades),                                                      # nothing asked
        ({k: False for k in keys}, grades),                                # all False
        ({k: True for k in keys[:5]}, {k: rng.randint(0, 3) for k in keys[:5]}),
    ]
    return cases


def _show(d: dict) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in d.items()) + "}"


@exercise("03.score_protocol", reference=score_protocol, title="Exercise 1 · score_protocol",
          hint=_HINT_1, timeout_s=10.0)
def check_score_protocol(impl) -> None:
    rng = run_rng("03.score_protocol")
    for requirements, grades in _cases(rng):
        _judge_score(impl, requirements, grades)


def _judge_score(impl, requirements: dict, grades: dict) -> None:
    req, gr = copy.deepcopy(requirements), copy.deepcopy(grades)
    where = f"for requirements {_show(req)} and grades {_show(gr)}"
    try:
        got = impl(requirements, grades)
    except KeyError as err:
        raise Wrong(_key_error(err, req, gr, where), _HINT_1) from None
    got = plain(got, "`score_protocol` computes a number and waits for nothing: make it a "
                     "plain `def`, not `async def`.")
    if requirements != req or grades != gr:
        raise Wrong(f"score_protocol changed its arguments {where} (afterwards requirements "
                    f"{_show(requirements)}, grades {_show(grades)}): read them, do not modify "
                    "them; the recommender scores every protocol with the same dicts.", _HINT_1)
    want = sum(gr.get(k, 0) for k, v in req.items() if v is True)
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise Wrong(f"score_protocol returned {got!r} ({type(got).__name__}) {where}; return "
                    f"the score as a number ({want}).", _HINT_1)
    if got == want:
        return
    said = f"score_protocol returned {got!r} {where}; expected {want}"
    present = sum(gr.get(k, 0) for k in req)
    falses = [k for k, v in req.items() if v is False and gr.get(k, 0)]
    if got == present and falses:
        raise Wrong(f"{said}: you counted {', '.join(map(repr, falses))}, set to False. "
                    "`key in requirements` is True for a key whose value is "
                    "False: the source tutorial's bug, which makes its recommender answer "
                    "websocket for its own gRPC scenario. Count a requirement only when its "
                    "value is True.", _HINT_1)
    if got == sum(gr.values()) and req != {k: True for k in gr}:
        raise Wrong(f"{said}: you added every grade the protocol has, also for requirements "
                    "that were not asked for. Loop over the requirements, not the grades.",
                    _HINT_1)
    wanted = [k for k, v in req.items() if v is True]
    if got == len(wanted) or got == sum(1 for k in wanted if k in gr) or \
            got == sum(1 for k in wanted if gr.get(k)):
        raise Wrong(f"{said}: you counted the wanted requirements; add their grades instead "
                    "(a protocol graded 3 on a requirement fits it better than one graded 1).",
                    _HINT_1)
    graded = [gr.get(k, 0) for k in wanted]
    if graded and got in (graded[0], max(graded)) and len(graded) > 1:
        raise Wrong(f"{said}: only one requirement was counted (a `return` inside the loop, "
                    "or max instead of sum?). Add the grades of all wanted requirements, then "
                    "return after the loop.", _HINT_1)
    raise Wrong(f"{said}: the sum of the grades of the requirements set to True.", _HINT_1)


def _key_error(err: KeyError, req: dict, gr: dict, where: str) -> str:
    """What a KeyError means, by the dict the missing key belongs to: a requirement without a
    grade (grades[key]) or a graded key the scenario does not mention (requirements[key])."""
    key = err.args[0] if len(err.args) == 1 else None
    said = f"score_protocol raised {raised(err)} {where}"
    try:
        in_req, in_gr = key in req, key in gr
    except TypeError:                                  # an unhashable key: neither dict's
        in_req = in_gr = False
    if in_req and not in_gr:
        return (f"{said}: the protocol has no grade for the requirement {key!r}, and a "
                "requirement without a grade adds 0; use grades.get(key, 0).")
    if in_gr and not in_req:
        return (f"{said}: {key!r} is not in `requirements` (the protocol has a grade for it, "
                "but this scenario does not mention it, so it adds nothing). Loop over the "
                "requirements, not the grades, or use requirements.get(key, False).")
    return f"{said}: look up only keys that are in the dict you index."


# ---------------------------------------------------------------------------------------------
# Exercise 2: HTTP status -> gRPC code, as gRPC documents it


def grpc_code_for(http_status):
    """The gRPC status code (its name) a gRPC client reports when a proxy answered its call with
    a plain HTTP error and no grpc-status (gRPC's doc/http-grpc-status-mapping.md)."""
    table = {
        400: "INTERNAL",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "UNIMPLEMENTED",
        429: "UNAVAILABLE",
        502: "UNAVAILABLE",
        503: "UNAVAILABLE",
        504: "UNAVAILABLE",
    }
    return table.get(http_status, "UNKNOWN")


#: gRPC's documented table (doc/http-grpc-status-mapping.md); every other status is UNKNOWN.
DOCUMENTED = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "UNIMPLEMENTED", 429: "UNAVAILABLE", 502: "UNAVAILABLE",
              503: "UNAVAILABLE", 504: "UNAVAILABLE"}
_HINT_2 = ("A dict of the eight statuses in gRPC's table (400, 401, 403, 404, 429, 502, 503, "
           "504) and `table.get(http_status, 'UNKNOWN')`.")
_WHY = {
    (404, "NOT_FOUND"): "a plain 404 from a proxy means the call reached no gRPC method there "
                        "(wrong host or path), so the method is unimplemented; NOT_FOUND is what "
                        "a gRPC server says, in grpc-status, when it ran the method and the "
                        "thing was missing",
    (400, "INVALID_ARGUMENT"): "the client library built the HTTP/2 request, so a 400 from an "
                               "intermediary means something broke in the stack, not that your "
                               "argument was invalid (only a gRPC server says INVALID_ARGUMENT)",
    (429, "RESOURCE_EXHAUSTED"): "429, like 502, 503 and 504, means the call did not get through "
                                 "now; gRPC maps them all to UNAVAILABLE, the code that says "
                                 "'try again later with backoff'",
    (504, "DEADLINE_EXCEEDED"): "DEADLINE_EXCEEDED is the code for the call's own gRPC "
                                "deadline running out; a proxy's 504 is UNAVAILABLE, like 502 "
                                "and 503",
    (500, "INTERNAL"): "500 is not in gRPC's table, so it is UNKNOWN: a proxy's 500 says "
                       "nothing about what happened at the gRPC server",
    (500, "UNAVAILABLE"): "only 502, 503 and 504 (and 429) map to UNAVAILABLE; 500 and every "
                          "other status not in the table are UNKNOWN",
}


def _statuses(rng) -> list[int]:
    """The documented statuses first, then every other 4xx/5xx (their order varies per run)."""
    others = [s for s in range(400, 600) if s not in DOCUMENTED]
    rng.shuffle(others)
    first = [s for s in (500, 501, 505) if s in others]          # common 5xx near the table
    return list(DOCUMENTED) + first + [s for s in others if s not in first]


@exercise("03.grpc_code_for", reference=grpc_code_for, title="Exercise 2 · grpc_code_for",
          hint=_HINT_2, timeout_s=10.0)
def check_grpc_code_for(impl) -> None:
    rng = run_rng("03.grpc_code_for")
    for status in _statuses(rng):
        _judge_code(impl, status, DOCUMENTED.get(status, "UNKNOWN"))


def _judge_code(impl, status: int, want: str) -> None:
    try:
        got = impl(status)
    except NotImplementedError:
        raise                                      # the untouched skeleton: evaluate says so
    except Exception as err:
        why = ""
        if isinstance(err, KeyError) and err.args == (status,):
            why = (f": {status} is not in gRPC's table, so it is UNKNOWN; look it up with "
                   "table.get(http_status, 'UNKNOWN')" if want == "UNKNOWN" else
                   f": your table has no entry for it; gRPC's documented mapping gives {want!r}")
        raise Wrong(f"for HTTP {status} your grpc_code_for raised {raised(err)}{why}.",
                    _HINT_2) from None
    got = plain(got, "`grpc_code_for` looks a status up in a table: make it a plain "
                     "`def`, not `async def`.")
    if got == want:
        return
    said = f"for HTTP {status} your grpc_code_for returned {got!r}"
    name = getattr(got, "name", None)
    if not isinstance(got, str):
        what, how = (f"an enum member whose name is {name!r}", " (its .name)") \
            if isinstance(name, str) else (f"an object of type {type(got).__name__}", "")
        raise Wrong(f"{said}, {what}: return the code's name as a str{how}, such as {want!r}, "
                    "as in the notebook's table.", _HINT_2)
    if got.strip().upper() == want:
        raise Wrong(f"{said}; the code's name is {want!r}: upper case, no spaces.", _HINT_2)
    why = _WHY.get((status, got))
    if why is None and want == "UNKNOWN":
        why = (f"{status} is not in gRPC's table, so it is UNKNOWN: only 400, 401, 403, 404, "
               "429, 502, 503 and 504 have their own code")
    raise Wrong(f"{said}; gRPC's documented mapping gives {want!r}"
                + (f": {why}." if why else "."), _HINT_2)


# Exercise 3 lives in its own module; importing it here registers it after the two above.
from .protocols_push import follow_events  # noqa: E402,F401
