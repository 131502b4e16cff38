"""A log-bucketed latency histogram: O(1) record, fixed memory, every percentile within 1 %.

Chapter 06 (the metrics recorder) and 07 (RED metrics). The tutorial's collector keeps every
sample and re-sorts on every record; this keeps counts in buckets whose width grows with the
value, as HdrHistogram and DDSketch do. Bucket i holds values in
[lowest * gamma**i, lowest * gamma**(i+1)) with gamma = (1 + a) / (1 - a), a = relative_error,
so the bucket's widest span is (gamma - 1) / (gamma + 1) = a either side of its harmonic
centre. 1 µs .. 1 h at 1 % takes about 1,100 buckets, however many samples are recorded.

Each bucket also keeps the smallest and largest value it has seen (`lo`, `hi`, reset when it
empties) and answers with 2*lo*hi / (lo + hi): never more than `a` away from any value in
[lo, hi], and exact when the bucket holds one repeated value (a fixed 100 ms delay reads as
100 ms, not 100.4).

Contract, for values in [lowest, highest] (units are the caller's; seconds by default):
- `percentile(q)` is within `relative_error` of the exact percentile of the same values by
  linear interpolation (numpy's default): the two order statistics it interpolates between
  are each estimated within the bound, and interpolating keeps it.
- `count` and `mean` are exact (a compensated sum); `min` and `max` are exact while values are
  only added; after `remove` they are bounds from the bucket (within 2 % at a = 1 %), because
  a window can forget which value was the smallest.
- Under- and overflow: values in [0, lowest) share one underflow bucket and values above
  `highest` one overflow bucket; a percentile landing there is only known to lie within that
  bucket's min..max. Choose the range to cover what you measure.

Pure: no I/O, no clock. `merge` adds a histogram of the same layout; `remove` takes away a
value recorded before, so a sliding window can be kept (labkit.obs.metrics.Recorder does).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from labkit._core import validate

__all__ = ["LogHistogram"]

_log = math.log
_SAFETY = 1.0 - 1e-9       # float rounding at a bucket edge must not push error past the bound


class LogHistogram:
    """Counts of non-negative values in log-spaced buckets; see the module docstring.

    `lowest` and `highest` bound the range with the error guarantee (default 1 µs .. 1 h, in
    seconds); `relative_error` is the bound (0 < a <= 0.1)."""

    __slots__ = ("lowest", "highest", "relative_error", "gamma", "_scale", "_last", "_counts",
                 "_lo", "_hi", "count", "_sum", "_comp")

    def __init__(self, *, lowest: float = 1e-6, highest: float = 3600.0,
                 relative_error: float = 0.01):
        self.lowest = validate.number("lowest", lowest, 0, lo_open=True)
        self.highest = validate.number("highest", highest, self.lowest, lo_open=True)
        self.relative_error = validate.number("relative_error", relative_error, 0, 0.1,
                                              lo_open=True)
        a = self.relative_error * _SAFETY
        self.gamma = (1 + a) / (1 - a)
        self._scale = 1.0 / math.log(self.gamma)
        # slot 0: underflow; 1 .. last-1: the log buckets; last: overflow
        inner = int(math.log(self.highest / self.lowest) * self._scale) + 1
        self._last = inner + 1
        self._counts = [0] * (inner + 2)
        self._lo = [0.0] * (inner + 2)
        self._hi = [0.0] * (inner + 2)
        self.count = 0
        self._sum = self._comp = 0.0

    # ---- recording ---------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every value (the layout, and so the memory, stays)."""
        self._counts[:] = [0] * len(self._counts)
        self.count = 0
        self._sum = self._comp = 0.0

    def _slot(self, value) -> int:
        if value.__class__ is not float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"value must be a finite number >= 0, got {value!r}")
            value = float(value)
        if value < self.lowest:
            if value >= 0:
                return 0
            raise ValueError(f"value must be a finite number >= 0, got {value!r}")
        if value <= self.highest:
            i = int(math.log(value / self.lowest) * self._scale) + 1
            return i if i < self._last else self._last - 1
        if value == math.inf:
            raise ValueError(f"value must be a finite number >= 0, got {value!r}")
        if value > self.highest:
            return self._last
        raise ValueError(f"value must be a finite number >= 0, got {value!r}")    # NaN

    def _add(self, x: float) -> None:
        s = self._sum                                          # Neumaier's compensated sum
        t = s + x
        self._comp += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
        self._sum = t

    def record(self, value: float) -> None:
        """Add one `value`: O(1)."""
        if value.__class__ is float and self.lowest <= value <= self.highest:   # fast path
            j = int(_log(value / self.lowest) * self._scale) + 1
            if j >= self._last:
                j = self._last - 1
        else:
            j = self._slot(value)
        c = self._counts[j]
        if c:
            if value < self._lo[j]:
                self._lo[j] = value
            elif value > self._hi[j]:
                self._hi[j] = value
        else:
            self._lo[j] = self._hi[j] = value
        self._counts[j] = c + 1
        self.count += 1
        self._add(value)

    def remove(self, value: float) -> None:
        """Take away one `value` recorded before (a sample leaving a window): O(1).
        ValueError if its bucket is empty. The bucket keeps its lo..hi (still a true bound
        for what is left) until it empties."""
        j = self._slot(value)
        c = self._counts[j]
        if not c:
            raise ValueError(f"value {value!r} was not recorded (its bucket is empty)")
        self._counts[j] = c - 1
        self.count -= 1
        if self.count:
            self._add(-value)
        else:
            self._sum = self._comp = 0.0

    def merge(self, other: "LogHistogram") -> "LogHistogram":
        """Add every value of `other` (same lowest, highest and relative_error) into this one
        and return self. Buckets add up exactly, so merged percentiles keep the bound."""
        if not isinstance(other, LogHistogram) or \
                (other.lowest, other.highest, other.relative_error) != \
                (self.lowest, self.highest, self.relative_error):
            raise ValueError(f"other must be a LogHistogram with the same lowest, highest and "
                             f"relative_error, got {other!r}")
        if other is self:
            other = self.copy()
        counts, lo, hi = self._counts, self._lo, self._hi
        for j, c in enumerate(other._counts):
            if c:
                if counts[j]:
                    lo[j] = min(lo[j], other._lo[j])
                    hi[j] = max(hi[j], other._hi[j])
                else:
                    lo[j], hi[j] = other._lo[j], other._hi[j]
                counts[j] += c
        self.count += other.count
        self._add(other._sum)
        self._add(other._comp)
        return self

    def copy(self) -> "LogHistogram":
        """An independent histogram with the same layout and values."""
        return LogHistogram(lowest=self.lowest, highest=self.highest,
                            relative_error=self.relative_error).merge(self)

    # ---- reading -----------------------------------------------------------------------
    @property
    def bucket_count(self) -> int:
        """Buckets held, under- and overflow included: fixed by the layout, not the data."""
        return len(self._counts)

    def _first(self) -> int:
        return next(j for j, c in enumerate(self._counts) if c)

    def _final(self) -> int:
        counts = self._counts
        return next(j for j in range(len(counts) - 1, -1, -1) if counts[j])

    @property
    def min(self) -> float:
        """The smallest value (exact until a `remove`; then a lower bound); NaN if empty."""
        return self._lo[self._first()] if self.count else math.nan

    @property
    def max(self) -> float:
        """The largest value (exact until a `remove`; then an upper bound); NaN if empty."""
        return self._hi[self._final()] if self.count else math.nan

    @property
    def sum(self) -> float:
        return self._sum + self._comp

    @property
    def mean(self) -> float:
        """The exact mean of the values held (NaN if empty)."""
        return (self._sum + self._comp) / self.count if self.count else math.nan

    def _estimate(self, j: int) -> float:
        lo, hi = self._lo[j], self._hi[j]
        return lo if lo == hi else 2 * lo * hi / (lo + hi)

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """The q-th percentiles (each 0..100) in one pass over the buckets; NaN when empty."""
        qs = [validate.number("q", q, 0, 100) for q in qs]
        n = self.count
        if not n:
            return [math.nan] * len(qs)
        wanted = []                 # (position, lower rank, upper rank), ranks 0-based
        for q in qs:
            pos = (n - 1) * q / 100
            lower = math.floor(pos)
            wanted.append((pos, lower, min(lower + 1, n - 1)))
        ranks = sorted({r for _, lower, upper in wanted for r in (lower, upper)})
        value_at = {}
        seen = k = 0
        for j, c in enumerate(self._counts):
            if not c:
                continue
            seen += c
            while k < len(ranks) and ranks[k] < seen:
                value_at[ranks[k]] = self._estimate(j)
                k += 1
            if k == len(ranks):
                break
        return [value_at[lower] + (value_at[upper] - value_at[lower]) * (pos - lower)
                for pos, lower, upper in wanted]

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100), within relative_error of the exact one; NaN if empty."""
        return self.percentiles([q])[0]

    def summary(self) -> dict:
        """count, min, max, mean, p50, p95, p99 (NaN when empty)."""
        p50, p95, p99 = self.percentiles([50, 95, 99])
        return {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean,
                "p50": p50, "p95": p95, "p99": p99}

    def __len__(self) -> int:
        return self.count

    def __repr__(self):
        return (f"<LogHistogram count={self.count} range={self.lowest:g}..{self.highest:g} "
                f"±{self.relative_error:.0%} buckets={self.bucket_count}>")
