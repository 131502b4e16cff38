"""Poison messages and duplicates (chapter 02): requeue-forever loops and wastes the CPU;
bounded redelivery and a delivery limit dead-letter the poison; idempotence removes the
duplicate charges that consumer crashes cause. Virtual time: counts, not timings."""
import pytest

from labkit.labs.poison import POLICIES, duplicates_lab, poison_lab


@pytest.fixture(scope="module")
def runs():
    return {p: poison_lab(policy=p, seed=0) for p in POLICIES}


def test_requeue_forever_redelivers_the_poison_until_the_run_is_stopped(runs):
    r = runs["requeue-forever"]
    (mid, n), = r["poison_deliveries"].items()
    # 5 s of virtual time at 10 ms a delivery: the poison took hundreds of deliveries
    assert n > 200 and r["finished"] is False and r["still_in_queue"] == 1
    assert r["dlq_ids"] == [] and r["wasted_share"] > 0.5
    assert r["checker"]["lost_ids"] == [mid]           # never acked nor dead-lettered
    assert r["good_done"] == r["messages"] - 1          # 2 consumers: the other one got through


@pytest.mark.parametrize("policy", ["retry-then-dead-letter", "delivery-limit"])
def test_bounded_policies_dead_letter_the_poison_after_two_deliveries(runs, policy):
    """Two, as chapter 02's text and exercise 1 say: the first, and one redelivery."""
    r = runs[policy]
    assert r["poison_deliveries"] == {mid: 2 for mid in r["poison_ids"]}
    assert r["dlq_ids"] == r["poison_ids"] and r["finished"] and r["still_in_queue"] == 0
    assert r["good_done"] == r["messages"] - 1 and r["wasted_share"] < 0.05
    c = r["checker"]
    assert c["ok"] and c["lost"] == 0 and c["duplicates"] == 0
    reason = "rejected" if policy == "retry-then-dead-letter" else "delivery_limit"
    assert c["dead_lettered"] == {reason: 1}


def test_the_poison_loop_delays_good_orders(runs):
    loop, fixed = runs["requeue-forever"], runs["retry-then-dead-letter"]
    assert loop["good_latency_p99_ms"] > 1.3 * fixed["good_latency_p99_ms"]
    assert loop["cpu_wasted_s"] > 20 * fixed["cpu_wasted_s"]


def test_two_poisons_stall_both_prefetch_1_consumers():
    r = poison_lab(policy="requeue-forever", poison=2, messages=400, seconds=3.0, seed=3)
    assert r["good_waiting"] > 0 and sum(r["poison_deliveries"].values()) > 200
    fixed = poison_lab(policy="delivery-limit", poison=2, messages=400, seconds=3.0, seed=3)
    assert fixed["good_waiting"] == 0 and sorted(fixed["dlq_ids"]) == sorted(r["poison_ids"])


def test_same_seed_same_numbers_and_seeds_matter():
    assert poison_lab(policy="requeue-forever", seed=4) == poison_lab(policy="requeue-forever",
                                                                      seed=4)
    a, b = (poison_lab(policy="retry-then-dead-letter", poison=3, seed=s) for s in (1, 2))
    assert a["poison_ids"] != b["poison_ids"]
    assert duplicates_lab(crash_rate=0.2, idempotent=False, seed=5) == \
        duplicates_lab(crash_rate=0.2, idempotent=False, seed=5)


@pytest.mark.parametrize("crash_rate", [0.1, 0.3])
def test_crashes_cause_extra_charges_and_idempotence_removes_them(crash_rate):
    plain = duplicates_lab(crash_rate=crash_rate, idempotent=False, messages=500)
    dedup = duplicates_lab(crash_rate=crash_rate, idempotent=True, messages=500)
    for r in (plain, dedup):
        assert r["lost"] == 0 and r["orders_charged"] == 500 and r["crashes"] > 0
    assert plain["extra_charges"] == plain["duplicates"] > 0.5 * crash_rate * 500
    assert plain["max_charges_per_order"] >= 2
    assert dedup["extra_charges"] == 0 and dedup["duplicates"] == 0
    assert dedup["max_charges_per_order"] == 1 and dedup["skipped"] > 0
    assert dedup["checker"]["ok"]


def test_no_crashes_no_duplicates():
    r = duplicates_lab(crash_rate=0.0, idempotent=False, messages=200)
    assert r["extra_charges"] == 0 and r["crashes"] == 0 and r["redelivered"] == 0


@pytest.mark.parametrize("kw, match", [
    ({"policy": "requeue"}, "policy"),
    ({"policy": "delivery-limit", "messages": 0}, "messages"),
    ({"policy": "delivery-limit", "poison": 300}, "poison"),
    ({"policy": "delivery-limit", "seconds": 0}, "seconds"),
    ({"policy": "delivery-limit", "seed": 1.5}, "seed"),
])
def test_poison_lab_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        poison_lab(**kw)


@pytest.mark.parametrize("kw, match", [
    ({"crash_rate": 1.0, "idempotent": True}, "crash_rate"),
    ({"crash_rate": 0.1, "idempotent": 1}, "idempotent"),
    ({"crash_rate": 0.1, "idempotent": True, "messages": -5}, "messages"),
])
def test_duplicates_lab_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        duplicates_lab(**kw)
