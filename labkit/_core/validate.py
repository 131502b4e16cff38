"""Argument checks with one kind of error message, used by every labkit module.

A learner who passes a bad value gets a `ValueError` that names the argument, the range it
takes and what was given, at the call, instead of an OverflowError, a hang or a silently wrong
result later. Ranges are closed unless `lo_open`/`hi_open` say otherwise; NaN, infinities,
bools and numbers too large for a float are never numbers here.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["number", "integer", "choice", "boolean", "optional_number", "text"]


def _fmt(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


def _range(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    if hi == math.inf and not hi_open:
        hi_open = True
    if lo == -math.inf:
        return f"{'<' if hi_open else '<='} {_fmt(hi)}"
    if hi == math.inf:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"


def number(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
           lo_open: bool = False, hi_open: bool = False, unit: str = "") -> float:
    """`value` as a finite float in the range, else ValueError naming `name`.

    Ints of any size are accepted only if they fit in a float (10**400 is refused, not an
    OverflowError later). `unit` is added to the message, e.g. ``unit=" ms"``.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            x = float(value)
        except OverflowError:
            ok = False
        else:
            ok = math.isfinite(x) and (x > lo if lo_open else x >= lo) and \
                (x < hi if hi_open else x <= hi)
    if not ok:
        raise ValueError(f"{name} must be a finite number {_range(lo, hi, lo_open, hi_open)}"
                         f"{unit}, got {value!r}")
    return x


def optional_number(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
                    lo_open: bool = False, hi_open: bool = False, unit: str = "") -> float | None:
    """Like `number`, but None passes through (meaning "no limit")."""
    if value is None:
        return None
    try:
        return number(name, value, lo, hi, lo_open=lo_open, hi_open=hi_open, unit=unit)
    except ValueError as e:
        raise ValueError(f"{e} (or None)") from None


def integer(name: str, value: Any, lo: int | None = None, hi: int | None = None, *,
            unit: str = "") -> int:
    """`value` as an int in ``lo..hi`` (either bound may be None), else ValueError.

    A float with an integral value (``3.0``) is refused: a count given as a float is usually a
    mistake (a rate passed where a count was meant), and an int knob must stay an int.
    """
    ok = isinstance(value, int) and not isinstance(value, bool) and \
        (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        if lo is not None and hi is not None:
            rng = f" in {lo}..{hi}"
        elif lo is not None:
            rng = f" >= {lo}"
        elif hi is not None:
            rng = f" <= {hi}"
        else:
            rng = ""
        raise ValueError(f"{name} must be a whole number (int){rng}{unit}, got {value!r}")
    return int(value)


def choice(name: str, value: Any, options: Iterable) -> Any:
    """`value` if it is one of `options` (compared with ==, bools never match numbers)."""
    options = list(options)
    if isinstance(value, bool) and not any(isinstance(o, bool) for o in options):
        ok = False
    else:
        try:
            ok = value in options
        except TypeError:
            ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    # Return the option itself (so 500.0 given for a status of 500 is stored as the int 500).
    return next(o for o in options if o == value)


def boolean(name: str, value: Any) -> bool:
    """`value` if it is True or False (1, 0 and "yes" are refused)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """`value` if it is a string (or None when `optional`), else ValueError naming `name`."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string{' or None' if optional else ''}, got {value!r}")
    return value
