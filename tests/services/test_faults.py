import math
import random
import statistics

import pytest

from labkit._core import seeding
from labkit.services.faults import DEFAULTS, KNOBS, FaultModel


@pytest.mark.parametrize("knob, value, expected", [
    ("latency_ms", -1, r"latency_ms must be a finite number in \[0, 60000\] ms, got -1"),
    ("latency_ms", 60_001, r"latency_ms must be a finite number in \[0, 60000\] ms"),
    ("error_rate", 1.5, r"error_rate must be a finite number in \[0, 1\]"),
    ("error_rate", -0.1, r"error_rate must be a finite number in \[0, 1\]"),
    ("reset_rate", float("nan"), r"reset_rate must be a finite number"),
    ("error_status", 418, r"error_status must be one of \[429, 500, 502, 503, 504\]"),
    ("latency_dist", "gaussian", r"latency_dist must be one of"),
    ("outage", 1, r"outage must be True or False"),
    ("latency_ms", True, r"latency_ms must be a finite number"),
    ("latncy_ms", 5, r"unknown fault knob 'latncy_ms'"),
])
def test_bad_knobs_name_the_knob_and_its_range(knob, value, expected):
    f = FaultModel()
    with pytest.raises(ValueError, match=expected):
        setattr(f, knob, value)
    assert f.summary() == DEFAULTS          # nothing changed


def test_set_is_all_or_nothing():
    f = FaultModel()
    with pytest.raises(ValueError):
        f.set(latency_ms=100, error_rate=7)
    assert f.latency_ms == 0


def test_long_tail_needs_p99_at_least_p50():
    f = FaultModel()
    with pytest.raises(ValueError, match="latency_p99_ms must be >= latency_ms"):
        f.set(latency_dist="long_tail", latency_ms=100, latency_p99_ms=50)
    f.set(latency_dist="long_tail", latency_ms=100, latency_p99_ms=1000)
    assert f.latency_p99_ms == 1000


def test_every_knob_is_documented_and_has_a_default():
    import labkit.services.faults as mod
    assert set(KNOBS) == set(DEFAULTS)
    for knob in KNOBS:
        assert knob in mod.__doc__


def _delays(f, n, seed=1):
    rng = random.Random(seed)
    return [f.decide(rng).delay_s * 1000 for _ in range(n)]


def test_fixed_uniform_and_rate():
    assert set(_delays(FaultModel(latency_ms=40), 200)) == {40.0}
    d = _delays(FaultModel(latency_dist="uniform", latency_ms=100, jitter_ms=30), 5000)
    assert 70 <= min(d) < 72 and 128 < max(d) <= 130
    share = sum(x > 0 for x in _delays(FaultModel(latency_ms=10, latency_rate=0.2), 20_000)) / 20_000
    # binomial sd at n=20000, p=0.2 is 0.0028: 4 sd = 0.011
    assert abs(share - 0.2) < 0.011


def test_long_tail_hits_its_p50_and_p99():
    d = sorted(_delays(FaultModel(latency_dist="long_tail", latency_ms=50, latency_p99_ms=800), 40_000))
    p50, p99 = d[len(d) // 2], d[int(len(d) * 0.99)]
    # With 40k samples the empirical quantiles are within a few percent of the true ones.
    assert p50 == pytest.approx(50, rel=0.05)
    assert p99 == pytest.approx(800, rel=0.10)


def test_error_and_reset_shares_and_retry_after():
    f = FaultModel(error_rate=0.3, error_status=429, retry_after_s=2)
    rng = random.Random(3)
    faults = [f.decide(rng) for _ in range(10_000)]
    errors = [x for x in faults if x.action == "error"]
    assert abs(len(errors) / 10_000 - 0.3) < 0.02
    assert {x.status for x in errors} == {429} and {x.retry_after_s for x in errors} == {2.0}
    f.set(error_status=500)
    assert all(x.retry_after_s is None for x in (f.decide(rng) for _ in range(2000)) if x.action == "error")
    f.set(error_rate=0, reset_rate=1.0)
    assert f.decide(rng).action == "reset"
    f.set(outage=True)
    assert f.decide(rng).action == "outage" and f.decide(rng).status == 503


def test_same_seed_same_faults_whatever_the_knobs_draw():
    knobs = dict(latency_dist="long_tail", latency_ms=20, latency_p99_ms=300, error_rate=0.2)
    a = FaultModel(**knobs)
    b = FaultModel(**knobs)
    ra, rb = seeding.rng("service:x", 7), seeding.rng("service:x", 7)
    assert [a.decide(ra) for _ in range(500)] == [b.decide(rb) for _ in range(500)]
    # each decision draws the same count, so an outage in the middle does not shift later draws
    ra, rb = seeding.rng("service:x", 7), seeding.rng("service:x", 7)
    a.outage = True
    [a.decide(ra) for _ in range(10)]
    [b.decide(rb) for _ in range(10)]
    a.outage = False
    assert [a.decide(ra) for _ in range(50)] == [b.decide(rb) for _ in range(50)]


def test_different_services_get_different_streams():
    assert seeding.rng("service:a").random() != seeding.rng("service:b").random()


def test_listeners_hear_only_changes():
    f = FaultModel()
    heard = []
    f.on_change(heard.append)
    f.latency_ms = 0
    f.latency_ms = 25
    f.reset()
    assert heard == [{"latency_ms": 25.0}, {"latency_ms": 0.0}]


def test_describe_and_all_off():
    f = FaultModel()
    assert f.all_off
    f.set(latency_ms=120, error_rate=0.05, error_status=503)
    assert not f.all_off
    assert "120 ms" in f.describe() and "5%" in f.describe() and "503" in f.describe()
    f.outage = True
    assert "OUTAGE" in f.describe()


def test_normal_quantile_used_for_long_tail_is_right():
    # sanity check of the p99 z value the lognormal uses
    assert statistics.NormalDist().inv_cdf(0.99) == pytest.approx(2.3263, abs=1e-4)
    assert not math.isnan(FaultModel(latency_dist="long_tail")._latency_ms(0.5))


def test_a_fault_model_can_be_copied_and_the_copy_has_no_listeners():
    import copy
    import pickle
    f = FaultModel(latency_ms=120, error_rate=0.1, error_status=503)
    heard = []
    f.on_change(heard.append)
    for twin in (copy.deepcopy(f), copy.copy(f), pickle.loads(pickle.dumps(f))):
        assert twin is not f and twin.summary() == f.summary()
        twin.latency_ms = 5                     # the copy is independent of the original
        assert f.latency_ms == 120 and twin.listener_count == 0
    assert heard == []


def test_on_change_returns_an_idempotent_unsubscribe():
    f = FaultModel()
    heard = []
    unsubscribe = f.on_change(heard.append)
    assert callable(unsubscribe) and f.listener_count == 1
    f.latency_ms = 10
    unsubscribe()
    unsubscribe()                               # a second call is harmless
    f.latency_ms = 20
    assert heard == [{"latency_ms": 10.0}] and f.listener_count == 0
    # the same callable subscribed twice is two subscriptions, each removed by its own handle
    u1, u2 = f.on_change(heard.append), f.on_change(heard.append)
    u1()
    u1()                                        # must not remove u2's subscription
    assert f.listener_count == 1
    u2()
    assert f.listener_count == 0
    with pytest.raises(ValueError, match="listener must be callable"):
        f.on_change("not a function")


@pytest.mark.parametrize("knob, value, expected", [
    ("latency_ms", 10**400, r"latency_ms must be a finite number in \[0, 60000\] ms, got 1000"),
    ("retry_after_s", float("inf"), r"retry_after_s must be a finite number in \[0, 3600\] s"),
    ("error_rate", "0.5", r"error_rate must be a finite number in \[0, 1\]"),
    ("error_status", "500", r"error_status must be one of \[429, 500, 502, 503, 504\]"),
    ("latency_dist", ["fixed"], r"latency_dist must be one of"),
])
def test_more_bad_knobs_get_a_value_error_not_another_exception(knob, value, expected):
    f = FaultModel()
    with pytest.raises(ValueError, match=expected):
        f.set(**{knob: value})
    assert f.summary() == DEFAULTS


def test_an_int_knob_given_as_an_integral_float_is_stored_as_the_int():
    f = FaultModel(error_status=500.0)
    assert f.error_status == 500 and type(f.error_status) is int
    f.error_status = 503.0
    assert type(f.summary()["error_status"]) is int


def test_keyed_decisions_are_stable_and_have_the_set_rates():
    from labkit.services.faults import keyed_uniforms
    # a stable hash: the same numbers in every process and on every machine
    assert keyed_uniforms("a") == pytest.approx((0.5357767879582015, 0.6273244798922081,
                                                 0.2463452139120872, 0.8638975195942756))
    f = FaultModel(error_rate=0.3, reset_rate=0.1)
    faults = [f.decide_keyed(f"labkit:1:service:x:request:{i}") for i in range(20_000)]
    assert faults == [f.decide_keyed(f"labkit:1:service:x:request:{i}") for i in range(20_000)]
    resets = sum(x.action == "reset" for x in faults) / 20_000
    errors = sum(x.action == "error" for x in faults) / 20_000
    # binomial sd at n=20000: 0.0021 (p=0.1) and 0.003 (p=0.27 = 0.9 * 0.3): 4 sd bands
    assert abs(resets - 0.1) < 0.009 and abs(errors - 0.27) < 0.013
    assert all(0.0 <= u < 1.0 for i in range(2000) for u in keyed_uniforms(str(i)))
