"""labkit._core.validate: one kind of clear error for every bad argument."""
import math

import pytest

from labkit._core import validate as v


@pytest.mark.parametrize("value", [10**400, math.nan, math.inf, -math.inf, True, "1", None, [1]])
def test_number_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(ValueError, match=r"latency_ms must be a finite number"):
        v.number("latency_ms", value, 0, 1000)


def test_number_bounds_and_open_ends():
    assert v.number("x", 0, 0, 1) == 0.0 and isinstance(v.number("x", 1, 0, 1), float)
    with pytest.raises(ValueError, match=r"x must be a finite number in \(0, 1\], got 0"):
        v.number("x", 0, 0, 1, lo_open=True)
    with pytest.raises(ValueError, match=r"> 0 s, got -1"):
        v.number("x", -1, 0, lo_open=True, unit=" s")
    assert v.optional_number("x", None, 0) is None
    with pytest.raises(ValueError, match=r"\(or None\)"):
        v.optional_number("x", -1, 0)


@pytest.mark.parametrize("value", [3.0, True, "3", 10**3 + 0.5])
def test_integer_refuses_floats_and_bools(value):
    with pytest.raises(ValueError, match=r"n must be a whole number \(int\) in 1\.\.100"):
        v.integer("n", value, 1, 100)


def test_integer_and_choice_and_boolean():
    assert v.integer("n", 5, 1) == 5
    with pytest.raises(ValueError, match=">= 1, got 0"):
        v.integer("n", 0, 1)
    assert v.choice("status", 500.0, [429, 500, 503]) == 500
    assert type(v.choice("status", 500.0, [429, 500, 503])) is int
    with pytest.raises(ValueError, match=r"status must be one of \[429, 500\], got True"):
        v.choice("status", True, [429, 500])
    with pytest.raises(ValueError, match="one of"):
        v.choice("shape", ["x"], ["fixed"])  # unhashable input still gives the clear error
    assert v.boolean("outage", False) is False
    with pytest.raises(ValueError, match="outage must be True or False, got 1"):
        v.boolean("outage", 1)


def test_text():
    assert v.text("title", "x") == "x" and v.text("title", None, optional=True) is None
    with pytest.raises(ValueError, match="title must be a string or None, got 3"):
        v.text("title", 3, optional=True)
    with pytest.raises(ValueError, match="title must be a string, got None"):
        v.text("title", None)
