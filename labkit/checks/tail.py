"""Chapter 1, exercise 3 (notebooks/01_sync.ipynb): the fan-out tail probability.

The check accepts any real number (float, int, Fraction, Decimal, numpy) and names a wrong
formula only where the cases tell formulas apart (n > 1: at n = 1 several coincide).
"""
from __future__ import annotations

import inspect
import math
import numbers
from decimal import Decimal

from . import Wrong, exercise, plain, run_rng

def p_slow_page(p: float, n: int) -> float:
    """Chance that a page making n independent calls, each slow with probability p, is slow."""
    return 1 - (1 - p) ** n


def _near(a, b, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol + tol * abs(b)


def _p_slow_cases(rng):
    fixed = [(0.01, 1), (0.05, 30), (0.01, 100), (0.5, 3), (0.0, 10), (1.0, 4), (0.2, 0)]
    drawn = [(round(rng.uniform(0.002, 0.3), 4), rng.randint(2, 150)) for _ in range(3)]
    return fixed[:4] + drawn + fixed[4:]


#: Wrong formulas a learner writes, and what each one is. A diagnosis is given only when the
#: answer matches the formula on every case with n > 1 where the formula differs from the right
#: one, and on at least two (at n = 1 several formulas coincide).
_MISTAKES = [
    (lambda p, n: 100 * (1 - (1 - p) ** n),
     "that looks like a percentage; return a fraction in [0, 1].",
     "Drop the `100 *`: a probability is a number between 0 and 1."),
    (lambda p, n: p * n,
     "that is p * n. Adding p n times counts pages with several slow calls more than once (and "
     "goes above 1 for large n).", "Count the pages where *every* call is fast."),
    (lambda p, n: p ** n,
     "that is p ** n, the chance that *all* n calls are slow. One slow call is enough to make "
     "the page slow.", ""),
    (lambda p, n: (1 - p) ** n,
     "that is (1 - p) ** n, the chance that the page is fast (all n calls fast). The page is "
     "slow otherwise.", ""),
    (lambda p, n: 1 - p ** n,
     "that is 1 - p ** n, the chance that not *all* calls are slow. The page is slow as soon "
     "as *one* call is slow: 1 minus the chance that all are fast.", ""),
    (lambda p, n: 1 - (1 - n) ** p,
     "that is 1 - (1 - n) ** p: p and n swapped in the formula (p is the chance per call, n "
     "the number of calls).", ""),
]


def _check_p_signature(impl) -> None:
    try:
        names = list(inspect.signature(impl).parameters)
    except (TypeError, ValueError):
        return
    if names[:2] == ["n", "p"]:
        raise Wrong("your parameters are in the other order: the check calls p_slow_page(p, n) "
                    "(the chance per call first, then the number of calls), as the exercise "
                    "defines it.", "`def p_slow_page(p, n):`")


def _real(got, call: str):
    """The answer as a float: any real number (float, int, Fraction, Decimal, numpy) is fine."""
    if isinstance(got, bool) or not isinstance(got, (numbers.Real, Decimal)):
        return got
    return float(got)


@exercise("01.p_slow_page", reference=p_slow_page, title="Exercise 3 · p_slow_page",
          hint="A page is fast only if all n calls are fast: (1 - p) ** n. It is slow otherwise.",
          timeout_s=10.0)
def check_p_slow_page(impl) -> None:
    _check_p_signature(impl)
    wrong = []
    for p, n in _p_slow_cases(run_rng("01.p_slow_page")):
        raw = plain(impl(p, n), "`p_slow_page` is plain arithmetic: make it a normal `def`.")
        call = f"p_slow_page({p}, {n})"
        got = _real(raw, call)
        if isinstance(got, complex) and _near(got, _MISTAKES[-1][0](p, n)):
            raise Wrong(f"{call} returned the complex number {got!r}: "
                        + _MISTAKES[-1][1], _MISTAKES[-1][2])
        if not isinstance(got, float) or math.isnan(got):
            raise Wrong(f"{call} returned {raw!r}, expected a number.")
        # float32 and the like carry ~7 digits: compare them at that precision.
        tol = 1e-9 if isinstance(raw, (int, float, numbers.Rational, Decimal)) else 1e-4
        want = p_slow_page(p, n)
        if not _near(got, want, tol):
            wrong.append((p, n, got, want, call))
    if not wrong:
        return
    for formula, why, hint in _MISTAKES:
        telling = [w for w in wrong if w[1] > 1 and not _near(_safe(formula, w[0], w[1]), w[3])]
        if len(telling) >= 2 and all(_near(_safe(formula, p, n), got) for p, n, got, *_ in telling):
            p, n, got, want, call = telling[0]
            raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}: {why}", hint)
    p, n, got, want, call = ([w for w in wrong if w[1] > 1] or wrong)[0]
    if not 0 <= got <= 1:
        raise Wrong(f"{call} = {got:.6g} is not a probability (outside 0..1); expected {want:.6g}.")
    raise Wrong(f"{call} = {got:.6g}, expected {want:.6g}.")


def _safe(formula, p, n):
    try:
        return formula(p, n)
    except (ArithmeticError, ValueError):
        return math.nan
