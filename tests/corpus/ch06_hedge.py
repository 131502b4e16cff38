"""Chapter 06, exercise hedge_delay (labkit/checks/perf_hedge.py): answers a learner writes.
The first WRONG entry is the one the notebook tests inject."""

WRONG = [
    ("06.hedge_delay", "the budget used as the percentile (p5 instead of p95)", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return float(np.percentile(latencies_ms, 100 * budget_extra))
'''),
    ("06.hedge_delay", "the mean of the sample", '''
def hedge_delay(latencies_ms, budget_extra):
    return sum(latencies_ms) / len(latencies_ms)
'''),
    ("06.hedge_delay", "off by one: a 1-based rank used as a 0-based index", '''
def hedge_delay(latencies_ms, budget_extra):
    import math
    xs = sorted(latencies_ms)
    return xs[math.ceil(len(xs) * (1 - budget_extra))]
'''),
    ("06.hedge_delay", "off by one: one index too low", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms)
    return xs[int(len(xs) * (1 - budget_extra)) - 2]
'''),
    ("06.hedge_delay", "sorted descending, indexed as if ascending", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms, reverse=True)
    return xs[int(len(xs) * (1 - budget_extra))]
'''),
    ("06.hedge_delay", "the paper's 10 ms, hard-coded", '''
def hedge_delay(latencies_ms, budget_extra):
    return 10.0
'''),
    ("06.hedge_delay", "ignores the budget: always the p95", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms)
    return xs[int(0.95 * len(xs))]
'''),
    ("06.hedge_delay", "ignores the budget: the max", '''
def hedge_delay(latencies_ms, budget_extra):
    return max(latencies_ms)
'''),
    ("06.hedge_delay", "a fraction passed to numpy.percentile", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return float(np.percentile(latencies_ms, 1 - budget_extra))
'''),
    ("06.hedge_delay", "sorts the caller's list in place", '''
def hedge_delay(latencies_ms, budget_extra):
    latencies_ms.sort()
    return latencies_ms[int(len(latencies_ms) * (1 - budget_extra))]
'''),
    ("06.hedge_delay", "returns seconds", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return float(np.percentile(latencies_ms, 100 * (1 - budget_extra))) / 1000
'''),
    ("06.hedge_delay", "async def", '''
async def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms)
    return xs[int(len(xs) * (1 - budget_extra))]
'''),
]

WHY = {
    "the budget used as the percentile (p5 instead of p95)": "is the share to hedge",
    "the mean of the sample": "is the mean of the sample",
    "off by one: a 1-based rank used as a 0-based index": "your index is one too high",
    "off by one: one index too low": "your index is one too low",
    "sorted descending, indexed as if ascending": "sorts in descending order",
    "the paper's 10 ms, hard-coded": "10 ms is the paper's delay",
    "ignores the budget: always the p95": "it ignores the budget",
    "ignores the budget: the max": "the slowest latency in the sample",
    "a fraction passed to numpy.percentile": "numpy.percentile takes percent",
    "sorts the caller's list in place": "changed the list it was given",
    "returns seconds": "1000 times too small",
    "async def": "make it a plain `def`",
}

RIGHT = [
    ("06.hedge_delay", "numpy.percentile, default (linear) method", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return np.percentile(latencies_ms, 100 * (1 - budget_extra))
'''),
    ("06.hedge_delay", "numpy.quantile with the inverted_cdf method", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return float(np.quantile(np.asarray(latencies_ms), 1 - budget_extra, method="inverted_cdf"))
'''),
    ("06.hedge_delay", "numpy.percentile with the weibull method", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return np.percentile(latencies_ms, 100 * (1 - budget_extra), method="weibull")
'''),
    ("06.hedge_delay", "statistics.quantiles, exclusive (its default)", '''
def hedge_delay(latencies_ms, budget_extra):
    import statistics
    cuts = statistics.quantiles(latencies_ms, n=100)
    return cuts[round(100 * (1 - budget_extra)) - 1]
'''),
    ("06.hedge_delay", "nearest rank (1-based, converted)", '''
def hedge_delay(latencies_ms, budget_extra):
    import math
    xs = sorted(latencies_ms)
    return xs[math.ceil(len(xs) * (1 - budget_extra)) - 1]
'''),
    ("06.hedge_delay", "descending, skipping the budget's share", '''
def hedge_delay(latencies_ms, budget_extra):
    slowest_first = sorted(latencies_ms, reverse=True)
    return slowest_first[int(len(latencies_ms) * budget_extra)]
'''),
    ("06.hedge_delay", "index int(n * p) into the sorted list", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms)
    return xs[int(len(xs) * (1 - budget_extra))]
'''),
    ("06.hedge_delay", "a Fraction-safe hand interpolation", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(latencies_ms)
    pos = (len(xs) - 1) * (1 - budget_extra)
    i = int(pos)
    if i + 1 >= len(xs):
        return xs[-1]
    return xs[i] + (xs[i + 1] - xs[i]) * (pos - i)
'''),
]

# After a beginner's run (/work/notes/reports/th.md): what a mutation did, an unsorted index,
# a position or count returned as the delay, an answer that never returns ------------------
WRONG += [
    ("06.hedge_delay", "removes the slowest from the caller's list", '''
def hedge_delay(latencies_ms, budget_extra):
    k = int(len(latencies_ms) * budget_extra)
    for _ in range(k):
        latencies_ms.remove(max(latencies_ms))
    return max(latencies_ms)
'''),
    ("06.hedge_delay", "appends to the caller's list", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    latencies_ms.append(0.0)          # "pad" the sample
    return float(np.percentile(latencies_ms, 100 * (1 - budget_extra)))
'''),
    ("06.hedge_delay", "rounds the caller's values in place", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    for i in range(len(latencies_ms)):
        latencies_ms[i] = round(latencies_ms[i], 1)
    return float(np.percentile(latencies_ms, 100 * (1 - budget_extra)))
'''),
    ("06.hedge_delay", "sorts the caller's list in place, descending", '''
def hedge_delay(latencies_ms, budget_extra):
    latencies_ms.sort(reverse=True)
    return latencies_ms[int(budget_extra * len(latencies_ms))]
'''),
    ("06.hedge_delay", "indexes the list as given, unsorted", '''
def hedge_delay(latencies_ms, budget_extra):
    return latencies_ms[int(len(latencies_ms) * (1 - budget_extra))]
'''),
    ("06.hedge_delay", "returns the index instead of the latency", '''
def hedge_delay(latencies_ms, budget_extra):
    return int(len(latencies_ms) * (1 - budget_extra))
'''),
    ("06.hedge_delay", "returns the number of requests to hedge", '''
def hedge_delay(latencies_ms, budget_extra):
    return len(latencies_ms) * budget_extra
'''),
    ("06.hedge_delay", "never returns", '''
def hedge_delay(latencies_ms, budget_extra):
    while True:
        pass
'''),
]

WHY.update({
    "removes the slowest from the caller's list": "items instead of",
    "appends to the caller's list": "items instead of",
    "rounds the caller's values in place": "its values changed",
    "sorts the caller's list in place, descending": "sorted in descending order",
    "indexes the list as given, unsorted": "of the list as you got it, which is not sorted",
    "returns the index instead of the latency": "a position in the list",
    "returns the number of requests to hedge": "a count of requests",
    "never returns": "did not return within 5 s",
})

RIGHT += [
    ("06.hedge_delay", "sorts in place, then puts the caller's order back", '''
def hedge_delay(latencies_ms, budget_extra):
    original = list(latencies_ms)
    latencies_ms.sort()
    i = (len(latencies_ms) - 1) * (1 - budget_extra)
    lo = int(i)
    hi = min(lo + 1, len(latencies_ms) - 1)
    d = latencies_ms[lo] + (latencies_ms[hi] - latencies_ms[lo]) * (i - lo)
    latencies_ms[:] = original
    return d
'''),
    ("06.hedge_delay", "the smallest latency with at most the budget's share above it", '''
def hedge_delay(latencies_ms, budget_extra):
    n = len(latencies_ms)
    for x in sorted(latencies_ms):
        if sum(1 for y in latencies_ms if y > x) <= budget_extra * n:
            return x
'''),
    ("06.hedge_delay", "heapq.nlargest", '''
def hedge_delay(latencies_ms, budget_extra):
    import heapq
    k = int(budget_extra * len(latencies_ms))
    return heapq.nlargest(k + 1, latencies_ms)[-1]
'''),
    ("06.hedge_delay", "rounded to 0.1 ms", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return round(float(np.percentile(latencies_ms, 100 * (1 - budget_extra))), 1)
'''),
]

# After a second beginner's run (/work/notes/reports/t6b.md, BUG 4 and BUG 8): rounding to
# whole ms failed only on some runs (int() passed the notebook's first check), and no sample
# had n * budget_extra < 1 or repeated latencies --------------------------------------------
WRONG += [
    ("06.hedge_delay", "rounded to whole ms with round()", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return round(float(np.percentile(latencies_ms, 100 * (1 - budget_extra))))
'''),
    ("06.hedge_delay", "truncated to whole ms with int()", '''
def hedge_delay(latencies_ms, budget_extra):
    import numpy as np
    return int(np.percentile(latencies_ms, 100 * (1 - budget_extra)))
'''),
    ("06.hedge_delay", "drops the slowest int(n * budget) with [:-k], then the max", '''
def hedge_delay(latencies_ms, budget_extra):
    k = int(len(latencies_ms) * budget_extra)      # the requests we may hedge
    return max(sorted(latencies_ms)[:-k])
'''),
    ("06.hedge_delay", "drops repeated latencies with set()", '''
def hedge_delay(latencies_ms, budget_extra):
    xs = sorted(set(latencies_ms))
    return xs[int(len(xs) * (1 - budget_extra))]
'''),
]

WHY.update({
    "rounded to whole ms with round()": "don't round",
    "truncated to whole ms with int()": "don't round",
    "drops the slowest int(n * budget) with [:-k], then the max": "less than one request",
    "drops repeated latencies with set()": "distinct values",
})

RIGHT += [
    ("06.hedge_delay", "statistics.quantiles, inclusive, n = 1 / budget (last cut)", '''
def hedge_delay(latencies_ms, budget_extra):
    import statistics
    return statistics.quantiles(latencies_ms, n=round(1 / budget_extra),
                                method="inclusive")[-1]
'''),
    ("06.hedge_delay", "numpy.quantile with the median_unbiased method, via functools.partial", '''
import functools
import numpy as np

def _q(latencies_ms, budget_extra, *, method):
    return float(np.quantile(np.array(latencies_ms, dtype=float), 1.0 - budget_extra,
                             method=method))

hedge_delay = functools.partial(_q, method="median_unbiased")
'''),
    ("06.hedge_delay", "heapq.nsmallest, keeping all but the budget's share", '''
def hedge_delay(latencies_ms, budget_extra):
    import heapq
    n = len(latencies_ms)
    return heapq.nsmallest(n - int(n * budget_extra), latencies_ms)[-1]
'''),
]
