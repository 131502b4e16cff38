"""Chapter 07, exercise 3 (notebooks/07_observability.ipynb): `keep_trace`, a tail-sampling
rule that keeps every error trace and every slow trace, and spends a span budget on the rest.

The check plays one collector window: a budget of spans, then a stream of finished traces
(fast, failed somewhere in the tree, failed at the root, slow, slow with every call done
early, slow only because a consumer ran on after the root returned (one where no single span
is slow), fast but with many nested spans, slow with nested spans (slow by any measure), slow
by 5-8 ms with the first call ending 14 ms or more in; spans shuffled). Before each trace it calls
``keep_trace(spans, slow_ms, spans_left)`` with what is left of the budget after the traces
your function kept so far, as a collector would. Every decision is compared with the rule;
a message names a known mistake only if your decisions match it on every trace where it
differs from the rule.
"""
from __future__ import annotations

from labkit.obs.tracing import SpanRecord
from . import Wrong, exercise, plain, run_rng


def keep_trace(spans, slow_ms, spans_left):
    """True to store this finished trace, False to drop it. Keep it, whatever the budget, if a
    span failed (status "error") or it was slower than `slow_ms` end to end (latest end_s minus
    earliest start_s, in ms); keep any other trace only if all its spans fit in what is left of
    the budget: len(spans) <= spans_left."""
    if any(s.status == "error" for s in spans):
        return True
    duration_ms = (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000
    if duration_ms > slow_ms:
        return True
    return len(spans) <= spans_left


_HINT = ("Three questions in this order: did any span fail (look at every span's status)? Was "
         "the trace slower than slow_ms from its first start to its last end (seconds times "
         "1000)? If neither: does len(spans) fit in spans_left?")


def _hex(rng, n: int) -> str:
    return f"{rng.getrandbits(4 * n) or 1:0{n}x}"


def _make(rng, kind: str, slow_ms: float, n_spans: int | None = None) -> list:
    """A trace of one kind; times in ms, at least 5 ms away from slow_ms either side."""
    tid, root_id = _hex(rng, 32), _hex(rng, 16)
    slow = kind in ("slow", "async slow", "async short", "slow tail", "slow nested", "slow edge")
    root_ms = rng.uniform(slow_ms + 5, slow_ms * 2) if kind in ("slow", "slow tail") else \
        rng.uniform(slow_ms + 20, slow_ms * 1.5) if kind == "slow nested" else \
        rng.uniform(slow_ms + 5, slow_ms + 8) if kind == "slow edge" else \
        rng.uniform(slow_ms * 0.6, slow_ms * 0.75) if kind == "async short" else \
        rng.uniform(slow_ms * 0.5, slow_ms * 0.8) if kind == "nested" else \
        rng.uniform(slow_ms * 0.2, slow_ms * 0.8)
    n = n_spans or rng.randint(2, 9)
    spans, names = [], ("GET /items/{id}", "POST /charge", "SELECT", "publish", "render")
    if kind in ("nested", "slow nested"):         # each span nearly as long as its parent
        n, parent, lo, hi = n_spans or rng.randint(4, 8), root_id, 0.0, root_ms
        for _ in range(n - 1):
            sid = _hex(rng, 16)
            lo, hi = lo + rng.uniform(0.1, 1), hi - rng.uniform(0.1, 1)
            spans.append((sid, parent, lo, hi))
            parent = sid
    else:
        t = rng.uniform(14, 20) if kind == "slow edge" else rng.uniform(0.5, 2)
        step = (slow_ms * 0.5 if kind == "slow tail" else root_ms) / n   # tail: calls end early
        for _ in range(n - 1):
            d = rng.uniform(step * 0.3, step * 0.9)
            spans.append((_hex(rng, 16), root_id, t, t + d))
            t += step
    if kind == "async slow":                      # a consumer longer than slow_ms, root fast
        sid, start = spans[-1][0], root_ms + rng.uniform(1, 5)
        spans[-1] = (sid, root_id, start, start + slow_ms + rng.uniform(5, slow_ms * 0.5))
    if kind == "async short":                     # slow end to end, yet no span is: the
        sid, start = spans[-1][0], root_ms + rng.uniform(1, 5)    # consumer is the shorter
        spans[-1] = (sid, root_id, start, slow_ms + rng.uniform(5, slow_ms * 0.1))
    failed = {"error": spans[rng.randrange(len(spans))][0] if spans else root_id,
              "root error": root_id}.get(kind)
    out = [SpanRecord(tid, root_id, None, "POST /checkout", "gateway", "server", 0.0,
                      root_ms / 1000, "error" if failed == root_id else "ok",
                      {"http.status_code": 500 if failed == root_id else 200}, ())]
    for sid, parent, a, b in spans:
        status = "error" if sid == failed else "ok"
        out.append(SpanRecord(tid, sid, parent, rng.choice(names), "svc", "consumer"
                              if kind in ("async slow", "async short") and sid == spans[-1][0]
                              else "internal",
                              a / 1000, b / 1000, status,
                              {"error.type": "HTTP 503"} if status == "error" else {}, ()))
    assert slow == ((max(s.end_s for s in out) - min(s.start_s for s in out)) * 1000 > slow_ms)
    assert kind != "async slow" or max(s.duration_s for s in out) * 1000 > slow_ms + 5
    assert kind != "async short" or max(s.duration_s for s in out) * 1000 < slow_ms - 5
    assert kind != "slow tail" or max(s.end_s for s in out if s.parent_id) * 1000 < slow_ms - 5
    assert kind != "slow nested" or min(s.duration_s for s in out) * 1000 > slow_ms + 5
    assert kind != "slow edge" or min(s.end_s for s in out) * 1000 > 14
    rng.shuffle(out)
    return out


#: name -> (decision given spans, slow_ms, spans_left; why it is wrong)
def _err_any(spans):
    return any(s.status == "error" for s in spans)


def _dur_ms(spans):
    return (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000


def _fits(spans, left):
    return len(spans) <= left


def _last_started_ms(spans):
    ordered = sorted(spans, key=lambda s: s.start_s)
    return (ordered[-1].end_s - ordered[0].start_s) * 1000


def _root(spans):
    return next(s for s in spans if s.parent_id is None)


_MISTAKES = {
    "errors within budget": (
        lambda sp, slow, left: _dur_ms(sp) > slow or _fits(sp, left),
        "span {failed} has status \"error\" and the trace was dropped (it did not fit in "
        "spans_left): errors are what you keep traces for; test s.status == \"error\" on every "
        "span and keep the trace if any matches, whatever spans_left says"),
    "root status only": (
        lambda sp, slow, left: _root(sp).status == "error" or _dur_ms(sp) > slow
        or _fits(sp, left),
        "a span deeper in the tree ({failed}) failed (status \"error\") while the root answered "
        "200, as when a retry or a fallback hides a failure; test s.status == \"error\" on "
        "every span (not the root's status, not an attribute)"),
    "root duration": (
        lambda sp, slow, left: _err_any(sp) or _root(sp).duration_s * 1000 > slow
        or _fits(sp, left),
        "you timed the root span only: a consumer ran on after the root returned, so the trace "
        "took longer end to end (latest end minus earliest start)"),
    "sum of durations": (
        lambda sp, slow, left: _err_any(sp) or sum(s.duration_s for s in sp) * 1000 > slow
        or _fits(sp, left),
        "you added up the spans' durations: nested spans overlap, so the sum exceeds slow_ms "
        "although the trace took less end to end (latest end minus earliest start)"),
    "seconds vs ms": (
        lambda sp, slow, left: _err_any(sp) or _dur_ms(sp) / 1000 > slow or _fits(sp, left),
        "a trace {dur_ms:.0f} ms end to end (more than slow_ms) was dropped because it did not "
        "fit in spans_left: keep a slow trace whatever the budget, measured as the latest end_s "
        "minus the earliest start_s (seconds, so multiply by 1000 before comparing with "
        "slow_ms)"),
    "longest span": (
        lambda sp, slow, left: _err_any(sp) or max(s.duration_s for s in sp) * 1000 > slow
        or _fits(sp, left),
        "you timed the longest single span: no span of this trace lasted slow_ms, but from "
        "its first start to its last end it took {dur_ms:.0f} ms (work ran on after the root "
        "returned); take the latest end_s minus the earliest start_s"),
    "last started": (
        lambda sp, slow, left: _err_any(sp) or _last_started_ms(sp) > slow or _fits(sp, left),
        "you measured up to the end of the span that started last, but another span ended "
        "later: take the latest end_s (max over all spans), minus the earliest start_s"),
    "no budget": (
        lambda sp, slow, left: True,
        "you kept a trace that does not fit in the budget (spans_left); keep the others only "
        "while len(spans) <= spans_left"),
    "budget not by size": (
        lambda sp, slow, left: _err_any(sp) or _dur_ms(sp) > slow or left > 0,
        "spans_left was positive but smaller than the trace: the budget counts spans, keep the "
        "trace only if len(spans) <= spans_left"),
    "off by one": (
        lambda sp, slow, left: _err_any(sp) or _dur_ms(sp) > slow or len(sp) < left,
        "the trace fits exactly (len(spans) == spans_left): that still fits, use <="),
}


#: the mistakes in measuring the duration: one is named only when it decides wrong on two
#: traces or more and this window's traces tell it from every other mistake (else an answer
#: that measures some other way could be told a mistake it did not make)
_DURATIONS = ("root duration", "sum of durations", "seconds vs ms", "longest span",
              "last started")


def _separated(calls, slow_ms: float, a: str, b: str) -> bool:
    rule_a, rule_b = _MISTAKES[a][0], _MISTAKES[b][0]
    return any(rule_a(c[0], slow_ms, c[1]) != rule_b(c[0], slow_ms, c[1]) for c in calls)


def _kinds(rng) -> tuple[list, list]:
    """The kinds of the window's first traces, and of its last ones (after the budget ran out)."""
    first = ["fast"] * 4 + ["error", "slow", "nested", "root error", "async slow", "fast",
                            "slow tail", "async short"]
    last = ["error", "async slow", "nested", "slow", "fast", "root error", "error", "fast",
            "async short", "slow tail", "slow nested", "slow edge", "slow tail",
            "async short", "nested"]
    rng.shuffle(first)
    rng.shuffle(last)
    return first, last


@exercise("07.keep_trace", reference=keep_trace, title="Exercise 3 · keep_trace", hint=_HINT,
          timeout_s=10.0)
def check_keep_trace(impl) -> None:
    rng = run_rng("07.keep_trace")
    slow_ms = float(rng.randrange(200, 800, 10))
    budget = rng.randint(120, 180)
    stored, calls = 0, []

    def call(trace, kind):
        nonlocal stored
        left = max(0, budget - stored)
        got = plain(impl(list(trace), slow_ms, left),
                    "`keep_trace` decides from the spans alone: make it a plain `def`, not "
                    "`async def`.")
        if type(got).__name__ not in ("bool", "bool_") and got not in (0, 1):
            raise Wrong(f"keep_trace returned {got!r}; return True (store the trace) or False "
                        "(drop it).", _HINT)
        calls.append((trace, left, bool(got), keep_trace(trace, slow_ms, left), kind))
        if got:
            stored += len(trace)

    first, last = _kinds(rng)
    for kind in first:
        call(_make(rng, kind, slow_ms), kind)
    # fast traces that use up the budget: one just too big for it, then one that fits exactly
    too_big = exact = False
    for _ in range(40):
        left = max(0, budget - stored)
        if left > 9:
            call(_make(rng, "fast", slow_ms, n_spans=min(9, left - rng.randint(2, 5))), "fast")
        elif left and not too_big:
            call(_make(rng, "fast", slow_ms, n_spans=left + rng.randint(1, 3)), "too big")
            too_big = True
        elif left and not exact:
            call(_make(rng, "fast", slow_ms, n_spans=left), "exact fit")
            exact = True
        else:
            break
    for kind in last:
        call(_make(rng, kind, slow_ms), kind)
    if all(got == want for _, _, got, want, _ in calls):
        return
    for name, (rule, why) in _MISTAKES.items():
        telling = [c for c in calls if rule(c[0], slow_ms, c[1]) != c[3]]
        if telling and all(c[2] == rule(c[0], slow_ms, c[1]) for c in calls) and (
                name not in _DURATIONS or len(telling) >= 2 and all(
                    _separated(calls, slow_ms, name, other)
                    for other in _MISTAKES if other != name)):
            _explain(telling[0], slow_ms, why)
    _explain(next(c for c in calls if c[2] != c[3]), slow_ms, None)


def _explain(call, slow_ms: float, why: str | None):
    trace, left, got, want, _ = call
    failed = [s for s in trace if s.status == "error"]
    root = _root(trace)
    facts = [f"{len(trace)} spans", f"{_dur_ms(trace):.0f} ms end to end "
             f"(root span {root.duration_s * 1000:.0f} ms)"]
    if failed:
        where = "the root" if failed[0] is root else f"{failed[0].name!r}, not the root"
        facts.append(f"a failed span: {where}")
    else:
        facts.append("no failed span")
    if not why:
        if failed:
            why = "a trace with a failed span is always kept"
        elif _dur_ms(trace) > slow_ms:
            why = ("a trace slower than slow_ms end to end (latest end_s minus earliest "
                   "start_s, times 1000; the spans come in any order) is always kept, whatever "
                   "the budget")
        else:
            why = (f"a fast trace without errors is kept only if it fits: {len(trace)} spans "
                   f"{'<=' if want else '>'} spans_left={left}")
    why = why.format(failed=repr(failed[0].name) if failed else "?", dur_ms=_dur_ms(trace))
    raise Wrong(f"keep_trace(<trace: {', '.join(facts)}>, slow_ms={slow_ms:g}, "
                f"spans_left={left}) returned {got}, expected {want}: {why}.", _HINT)
