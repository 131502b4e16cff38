"""labkit.labs.breaker_vs_retry: chapter 5's retry-around-an-open-breaker comparison."""
import pytest

from labkit.labs import breaker_vs_retry


def test_the_tutorial_asks_the_open_breaker_every_time_and_sleeps_in_between():
    tutorial, labkit_retry = breaker_vs_retry.compare(attempts=3, first_wait_s=1.0)
    assert tutorial["rejected"] == 3 and tutorial["failed_after_s"] == pytest.approx(3.0)
    assert tutorial["error"] == "RuntimeError"
    assert labkit_retry["rejected"] == 1 and labkit_retry["failed_after_s"] == pytest.approx(0.0)
    assert labkit_retry["error"] == "BreakerOpen"


def test_more_attempts_cost_the_tutorial_exponentially_more_time():
    tutorial, _ = breaker_vs_retry.compare(attempts=5, first_wait_s=0.5, open_s=600)
    assert tutorial["rejected"] == 5
    assert tutorial["failed_after_s"] == pytest.approx(0.5 * (1 + 2 + 4 + 8))


@pytest.mark.parametrize("kwargs,name", [({"attempts": 0}, "attempts"), ({"first_wait_s": -1}, "first_wait_s"),
                                         ({"open_s": 0}, "open_s"), ({"attempts": True}, "attempts")])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        breaker_vs_retry.compare(**kwargs)
