"""Chapter 06, exercise `hedge_delay` (notebooks/06_performance.ipynb): the hedge delay that
spends a budget of extra requests, from a latency sample.

A hedge is sent for every request still running after the delay, so a delay at the sample's
(1 - budget_extra) quantile hedges about a share budget_extra of requests: budget 0.05 -> the
p95. Percentile definitions differ on a small sample (numpy alone has 13), so the check
accepts anything from the lowest to the highest of numpy's methods and Python's
statistics.quantiles (which extrapolates past the max), widened by 0.5 % (`REL_TOL`), and
builds its samples so that the mistakes it names fall outside that range: samples of 20 to 200
distinct long-tailed latencies, shuffled, with budgets of 2 to 20 %, one where n * budget < 1
(less than one request to hedge), and one of 80 to 100 latencies repeating a few whole-ms
values (its p90 or p95 the same under every definition), new every run. To name a mistake
only when it is the one made, a wrong delay is probed with the same latencies doubled (a
position or count does not double), rotated (an unsorted index follows the rotation) or
shifted by 0.37 ms (a rounded delay stays whole). A whole delay is probed that way even when
it is inside the range, so rounding to whole ms fails on every run, not only when the
rounded value happens to miss.
"""
from __future__ import annotations

import dis
import inspect
import math
import numbers
import types

import numpy as np

from . import Wrong, exercise, plain, raised, run_rng

METHODS = ("inverted_cdf", "averaged_inverted_cdf", "closest_observation",
           "interpolated_inverted_cdf", "hazen", "weibull", "linear", "median_unbiased",
           "normal_unbiased", "lower", "higher", "midpoint", "nearest")
REL_TOL = 0.005
PAPER_MS = 10.0
_HINT = ("Sort a copy (sorted(latencies_ms)) and take the value with a share budget_extra of "
         "the sample above it: the (1 - budget_extra) quantile, e.g. "
         "numpy.percentile(latencies_ms, 100 * (1 - budget_extra)).")


def hedge_delay(latencies_ms, budget_extra):
    """The hedge delay (ms) that hedges a share `budget_extra` of requests: the sample's
    (1 - budget_extra) quantile, by linear interpolation (numpy's default)."""
    xs = sorted(latencies_ms)
    pos = (len(xs) - 1) * (1 - budget_extra)
    lo = int(pos)                        # pos >= 0, so int() is the floor
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _exclusive(xs: np.ndarray, q: float) -> float:
    """statistics.quantiles' default ("exclusive") q-quantile of the sorted xs: like numpy's
    weibull, but extrapolated past the last two values instead of clipped at the max."""
    n = len(xs)
    pos = (n + 1) * q                                 # a 1-based rank
    j = min(max(math.floor(pos), 1), n - 1)
    return float(xs[j - 1] + (pos - j) * (xs[j] - xs[j - 1]))


def _range(xs: np.ndarray, q: float) -> tuple[float, float]:
    """The lowest and highest q-quantile (0..1) over numpy's and statistics' definitions."""
    vals = [float(np.quantile(xs, q, method=m)) for m in METHODS] + [_exclusive(xs, q)]
    return min(vals), max(vals)


def _inside(x: float, rng: tuple[float, float], rel: float = REL_TOL) -> bool:
    lo, hi = rng
    return lo * (1 - rel) - 1e-9 <= x <= hi * (1 + rel) + 1e-9


def _index_range(xs: np.ndarray, rng) -> tuple[int, int]:
    """Indices of the sorted sample's first and last element inside `rng` (widened)."""
    idx = [i for i, x in enumerate(xs) if _inside(x, rng)]
    return idx[0], idx[-1]


class _Case:
    def __init__(self, sample: list, budget: float):
        self.sample, self.budget = sample, budget
        self.xs = np.sort(np.array(sample))
        self.n = len(sample)
        self.right = _range(self.xs, 1 - budget)
        self.low = _range(self.xs, budget)                       # budget used as percentile
        self.frac = float(np.quantile(self.xs, (1 - budget) / 100))   # np.percentile(x, 0.95)
        self.lo_i, self.hi_i = _index_range(self.xs, self.right)
        self.p = f"p{100 * (1 - budget):g}"
        self.distinct = np.unique(self.xs)
        self.tied = len(self.distinct) < self.n
        self.tiny = self.n * budget < 1                 # less than one request to hedge

    def hedged(self, d: float) -> int:
        return int(np.count_nonzero(self.xs > d))

    def separated(self) -> bool:
        """True if every mistake the check names is clearly outside the accepted range."""
        xs, n = self.xs, self.n
        if self.lo_i < 1 or self.hi_i > n - 2 + self.tiny:       # the max is right if tiny
            return False
        near = [xs[self.lo_i - 1], float(xs.mean()), PAPER_MS, xs[0],
                *self.low, self.frac, *(v * k for v in self.right for k in (1000, 0.001))]
        if not self.tiny:
            near += [xs[self.hi_i + 1], xs[-1]]
        if self.tied:                                   # so set() is caught, and every
            if self.right[1] - self.right[0] > 1e-9:    # definition gives the same delay
                return False
            dlo, dhi = _range(self.distinct, 1 - self.budget)
            if dlo <= self.right[1] * (1 + 3 * REL_TOL) and \
                    dhi >= self.right[0] * (1 - 3 * REL_TOL):
                return False
        # (when tiny, the p0.98 is next to the p2 whatever the sample: both near the min)
        below = [PAPER_MS, float(xs.mean())] + [self.frac] * (not self.tiny)
        return not any(_inside(v, self.right, 3 * REL_TOL) for v in near) and \
            not any(_inside(v, self.low, 3 * REL_TOL) for v in below)


#: (n, budget): small samples, where an index off by one matters; n * budget a whole number
#: and not, since the usual percentile definitions agree in the first kind and not the second;
#: n * budget < 1 (xs[-int(n * budget)] is xs[0]). Last, so the usual mistakes are named on
#: the usual samples first.
_SHAPES = [((20, 0.1), (40, 0.1)), ((25, 0.1), (45, 0.1)), ((40, 0.05), (60, 0.05)),
           ((50, 0.2), (30, 0.2)), ((200, 0.02), (150, 0.02)), ((30, 0.05), (50, 0.05)),
           ((30, 0.02), (40, 0.02))]
#: The sample of repeated whole-ms values, after those.
_TIED = ((100, 0.1), (80, 0.05))


def _tied_case(rng) -> _Case:
    """n latencies repeating 5 to 8 whole-ms values, shuffled: a run of one value V covers the
    (1 - budget) quantile with room either side (so every definition gives V), two slower
    values above it, and the fast values most often below."""
    n, budget = rng.choice(_TIED)
    t = n * (1 - budget)                              # the quantile's place, about
    while True:
        median, sigma = rng.uniform(3.0, 30.0), rng.uniform(0.6, 1.2)
        values = sorted({max(1, round(rng.lognormvariate(math.log(median), sigma)))
                         for _ in range(rng.randint(6, 10))})
        if len(values) < 5:
            continue
        *below, v, top1, top2 = values
        above = rng.randint(2, max(2, round(n * budget) - 2))
        first = rng.randint(max(len(below), math.floor(t) - 8), math.floor(t) - 2)
        counts, left = [], first                     # `first` items below V, fast ones most
        for k in range(len(below), 0, -1):
            c = left if k == 1 else rng.randint(1, left - (k - 1) - (k - 1) // 2)
            counts.append(c)
            left -= c
        sample = [float(x) for x, c in zip(below, counts) for _ in range(c)]
        sample += [float(v)] * (n - above - first)
        a1 = rng.randint(1, above - 1)
        sample += [float(top1)] * a1 + [float(top2)] * (above - a1)
        rng.shuffle(sample)
        case = _Case(sample, budget)
        if case.separated():
            return case


def _cases(rng) -> list[_Case]:
    cases = []
    for options in _SHAPES:
        n, budget = rng.choice(options)
        while True:
            median, sigma = rng.uniform(3.0, 40.0), rng.uniform(0.5, 1.2)
            sample = sorted({round(rng.lognormvariate(math.log(median), sigma), 2)
                             for _ in range(3 * n)} - {0.0})
            if len(sample) < n:
                continue
            sample = rng.sample(sample, n)                      # distinct, shuffled
            case = _Case(sample, budget)
            if case.separated():
                cases.append(case)
                break
    return cases + [_tied_case(rng)]


def _reverses(impl) -> bool:
    """True if the code sorts or walks in descending order (reverse=True, reversed(),
    .reverse(), [::-1])."""
    def walk(code: types.CodeType) -> bool:
        consts = code.co_consts
        if any(isinstance(c, tuple) and "reverse" in c for c in consts) or \
                {"reversed", "reverse", "flip"} & set(code.co_names):
            return True
        if -1 in consts and any(i.opname == "BUILD_SLICE" for i in dis.get_instructions(code)):
            return True
        return any(walk(c) for c in consts if isinstance(c, types.CodeType))
    code = getattr(inspect.unwrap(impl), "__code__", None)     # the check gets a wrapper
    return isinstance(code, types.CodeType) and walk(code)


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _call(impl, sample, budget, where, note=""):
    try:
        got = impl(sample, budget)
    except NotImplementedError:
        raise                                        # the untouched skeleton: not an attempt
    except Exception as err:
        raise Wrong(f"{where} raised {raised(err)}.{note}", _HINT) from None
    got = plain(got, "`hedge_delay` only computes a number: make it a plain `def`, "
                     "not `async def`.")
    if isinstance(got, bool) or not isinstance(got, numbers.Real) or math.isnan(float(got)):
        raise Wrong(f"{where} returned {got!r}; return the delay in ms, a number.", _HINT)
    return float(got)


def _changed(before: list, after: list) -> str:
    """What the answer did to the caller's list, in words that are true for it."""
    if len(after) != len(before):
        return (f"afterwards it has {len(after)} items instead of {len(before)} (remove, pop, "
                "append and del change the caller's list)")
    if sorted(after) == sorted(before):
        if after == sorted(before):
            how = "the same items, sorted (latencies_ms.sort() reorders the caller's data)"
        elif after == sorted(before, reverse=True):
            how = ("the same items, sorted in descending order (latencies_ms.sort(reverse=True) "
                   "or .reverse() reorders the caller's data)")
        else:
            how = ("the same items in another order (sorting or shuffling it in place "
                   "reorders the caller's data)")
        return f"afterwards it holds {how}"
    i = next(k for k, (a, b) in enumerate(zip(before, after)) if a != b)
    return (f"its values changed: element [{i}] was {before[i]!r}, afterwards {after[i]!r} "
            "(assigning to latencies_ms[i] changes the caller's list)")


def _near(x: float, target: float) -> bool:
    return abs(x - target) <= 1.0 + 1e-9


def _whole(x: float) -> bool:
    return abs(x - round(x)) <= 1e-9


def _rounds_from(x: float, rng) -> bool:
    """True if x is a whole number that rounding (or truncating, or math.ceil) some value of
    the accepted range gives."""
    lo, hi = rng
    return _whole(x) and lo * (1 - REL_TOL) - 1 < x < hi * (1 + REL_TOL) + 1


def _check_not_rounded(impl, case: _Case, got: float, said: str) -> None:
    """Wrong if the delay is whole, and whole again with every latency 0.37 ms longer: the
    answer rounds to whole ms. (A delay read or interpolated from the sample moves by 0.37 ms,
    so at most one of the two is whole, even rounded to 0.1 ms.)"""
    if not _rounds_from(got, case.right):
        return
    n, b = case.n, case.budget
    shifted = _call(impl, [x + 0.37 for x in case.sample], b,
                    f"hedge_delay(<the same {n} latencies, each 0.37 ms longer>, "
                    f"budget_extra={b:g})")
    if _rounds_from(shifted, tuple(v + 0.37 for v in case.right)):
        raise Wrong(f"{said}. With every latency 0.37 ms longer it returned {shifted:g}: a "
                    "whole number both times, so your function rounds the delay to whole ms "
                    "(round(), int(), math.floor or math.ceil). A rounded delay hedges a "
                    "different share of requests: don't round, return it as computed.",
                    _HINT)


@exercise("06.hedge_delay", reference=hedge_delay, title="Exercise 3 · hedge_delay",
          hint=_HINT, timeout_s=5.0)          # pure arithmetic on <= 200 numbers: ~20 ms
def check_hedge_delay(impl) -> None:
    for case in _cases(run_rng("06.hedge_delay")):
        _judge(impl, case)


def _judge(impl, case: _Case) -> None:
    b, n = case.budget, case.n
    given = list(case.sample)
    where = f"hedge_delay(<{n} latencies>, budget_extra={b:g})"
    tiny = (f" Here n × budget_extra = {n} × {b:g} = {n * b:g}, less than one request: "
            "int() of it is 0, and xs[:-0] is empty (xs[-0] is xs[0]). Hedging none of them "
            "is fine then: the delay is the slowest latency or above." if case.tiny else "")
    got = _call(impl, given, b, where, note=tiny)    # e.g. max(xs[:-int(n * budget)])
    if given != case.sample:
        raise Wrong(f"{where} changed the list it was given: {_changed(case.sample, given)}. "
                    "Work on a copy: sorted(latencies_ms) returns a new, sorted list.", _HINT)
    lo, hi = case.right
    want = (f"the {case.p} of this sample is {_ms(lo)}" if hi - lo < 1e-9 else
            f"the {case.p} of this sample is between {_ms(lo)} and {_ms(hi)} (by the usual "
            "percentile definitions)")
    said = f"{where} returned {_ms(got)}; {want}"
    if _inside(got, case.right):
        if _whole(got):                      # whole and right: right, or rounded into the range?
            doubled = _call(impl, [2 * x for x in case.sample], b, f"hedge_delay(<the same "
                            f"{n} latencies, each doubled>, budget_extra={b:g})")
            if _rounds_from(doubled, tuple(2 * v for v in case.right)):
                _check_not_rounded(impl, case, got, f"{where} returned {got:g}")
        return
    hedged = f"{case.hedged(got)} of {n} requests"
    if _inside(got * 1000, case.right):
        raise Wrong(f"{said}: your number is 1000 times too small. Seconds? The latencies "
                    "are in ms, and so is the delay.", _HINT)
    if abs(got - float(case.xs.mean())) <= 1e-6 * max(1.0, abs(got)):
        raise Wrong(f"{said}. {_ms(got)} is the mean of the sample: on a long tail the mean "
                    f"says little about how many requests are slower; here {hedged} "
                    f"({case.hedged(got) / n:.0%}) would be hedged, for a budget of {b:.0%}.",
                    _HINT)
    # Probe 1: every latency doubled. Any latency read from the sample doubles too.
    doubled = _call(impl, [2 * x for x in case.sample], b,
                    f"hedge_delay(<the same {n} latencies, each doubled>, budget_extra={b:g})")
    if abs(doubled - got) <= 1e-9 * max(1.0, abs(got)):
        if got == PAPER_MS:
            raise Wrong(f"{said}. 10 ms is the paper's delay, right for its system's "
                        "latencies; the delay must come from the sample you are given: a "
                        f"fixed 10 ms hedges {hedged} here, whatever the budget.", _HINT)
        same = (f"{where} returned {got:g}, and the same {got:g} for the same latencies "
                f"doubled: ")
        if _near(got, n * (1 - b)):
            raise Wrong(f"{same}that is a position in the list (n × (1 − budget_extra) = "
                        f"{n} × {1 - b:g} = {n * (1 - b):g}), not a latency. Return the "
                        "latency at that position of the sorted list; " + want + ".", _HINT)
        if _near(got, n * b):
            raise Wrong(f"{same}that is a count of requests (n × budget_extra = {n} × {b:g} = "
                        f"{n * b:g}), not a latency. Return the latency that only that many "
                        "requests exceed; " + want + ".", _HINT)
        raise Wrong(f"{same}it does not come from the latencies. The delay is a latency of "
                    "the sample, in ms; " + want + ".", _HINT)
    _check_not_rounded(impl, case, got, said)
    if case.tied and _inside(got, _range(case.distinct, 1 - b)):
        dup = int(np.count_nonzero(case.xs == case.right[0]))
        raise Wrong(f"{said}. That is the {case.p} of the sample's distinct values: the sample "
                    f"repeats latencies ({len(case.distinct)} distinct values among {n}; "
                    f"{_ms(case.right[0])} alone occurs {dup} times), and each repeat is a "
                    "request of its own. Take the percentile over all the latencies, not "
                    f"over set(latencies_ms). Here {hedged} would be hedged.", _HINT)
    # Probe 2: the same list rotated by one place. An answer that indexes the list as given
    # (not sorted) follows the rotation; one that sorts first returns the same delay.
    i = next((k for k, x in enumerate(case.sample) if x == got), None)
    if i is not None:
        rotated = case.sample[-1:] + case.sample[:-1]
        moved = _call(impl, rotated, b, f"hedge_delay(<the same {n} latencies in another "
                                        f"order>, budget_extra={b:g})")
        if moved == rotated[i] != got:
            raise Wrong(f"{said}. That is element [{i}] of the list as you got it, which is "
                        "not sorted: sort a copy first (sorted(latencies_ms)), then index it. "
                        f"Here {hedged} would be hedged.", _HINT)
    other = 0.2 if b != 0.2 else 0.05
    again = _call(impl, list(case.sample), other, f"hedge_delay(<same {n} latencies>, "
                                                   f"budget_extra={other:g})")
    if again == got:
        top = (f"{_ms(got)} is the slowest latency in the sample (the max): nothing would "
               "ever be hedged. " if got == float(case.xs[-1]) else
               f"Here {hedged} ({case.hedged(got) / n:.0%}) would be hedged. ")
        raise Wrong(f"{said}. Your function gives the same delay for budget_extra={b:g} and "
                    f"budget_extra={other:g}: it ignores the budget. {top}The budget allows "
                    f"{b:.0%}.", _HINT)
    if abs(got - case.frac) <= 1e-9 * max(1.0, abs(got)):
        raise Wrong(f"{said}. That is the p{1 - b:g}, near the fastest request: "
                    f"numpy.percentile takes percent (0..100), so {1 - b:g} means {1 - b:g} %, "
                    f"not {100 * (1 - b):g} %. (numpy.quantile is the one that takes a "
                    "fraction, 0..1.)", _HINT)
    # The budget used as the percentile: the low end for this budget and for the other one.
    if _inside(got, case.low) and _inside(again, _range(case.xs, other)):
        low = f"p{100 * b:g}"
        if _reverses(impl):
            raise Wrong(f"{said}. That is the {low}, the fast end: your code sorts in "
                        "descending order (or reverses) and then indexes as if the list "
                        f"were ascending, so {hedged} would be hedged instead of "
                        f"{b:.0%}.", _HINT)
        raise Wrong(f"{said}. That is the {low}, the fast end: budget_extra={b:g} is the "
                    f"share to hedge (the slowest {b:.0%}), not the percentile. At the {low}, "
                    f"{hedged} would be hedged.", _HINT)
    if got == float(case.xs[0]):
        raise Wrong(f"{said}. {_ms(got)} is the fastest latency in the sample (the min): "
                    f"{hedged} would be hedged. Here n × budget_extra = {n} × {b:g} = "
                    f"{n * b:g}, less than one request: if you index from the end, "
                    f"int({n * b:g}) is 0, and xs[-0] is xs[0], the first element. Hedging "
                    "none is fine then: the delay is the slowest latency or above."
                    if case.tiny else
                    f"{said}. {_ms(got)} is the fastest latency in the sample (the min): "
                    f"{hedged} would be hedged.", _HINT)
    idx = np.flatnonzero(np.abs(case.xs - got) <= 1e-9 * max(1.0, abs(got)))
    off = [i for i in (case.lo_i - 1, case.hi_i + 1) if i in idx]
    if off:
        i = off[0]
        side = "high" if i > case.hi_i else "low"
        around = (f"[{case.lo_i}]" if case.hi_i == case.lo_i else
                  f"[{case.lo_i}] to [{case.hi_i}]")
        raise Wrong(f"{said}, around element {around} of the sorted sample. {_ms(got)} is "
                    f"element [{i}]: your index is one too {side} (an off-by-one; Python "
                    f"counts from 0). It hedges {hedged}.", _HINT)
    raise Wrong(f"{said}. Your delay hedges {hedged} ({case.hedged(got) / n:.0%}); the "
                f"budget is {b:.0%}.", _HINT)
