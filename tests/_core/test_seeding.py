"""Seeding: one stream per instance, reproducible from the course seed or a simulation's seed."""
import random

import pytest

from labkit import sim
from labkit._core import seeding
from labkit.patterns.backoff import Backoff, FullJitter, schedule
from labkit.patterns.errors import ServiceError
from labkit.patterns.retry import Retry


@pytest.fixture(autouse=True)
def _restore_course_seed():
    yield
    seeding.set_seed(seeding.DEFAULT_SEED)


def retry_waits(policies, failures=3):
    """Each policy retries a call that fails `failures` times with 503: its waits, per policy."""
    async def main():
        out = []
        for policy in policies:
            errors = [ServiceError.from_status(503) for _ in range(failures)]

            async def flaky():
                if errors:
                    raise errors.pop()
                return "ok"

            assert await policy.call(flaky) == "ok"
            out.append([e.wait_s for e in policy.events if e.outcome == "retry"])
        return out
    return sim.run(main)


def hundred_default_clients(course_seed):
    seeding.set_seed(course_seed)
    return retry_waits([Retry(max_attempts=4) for _ in range(100)])


def test_default_retry_policies_do_not_retry_in_lock_step():
    waits = hundred_default_clients(2024)
    firsts = [w[0] for w in waits]
    assert len(set(firsts)) >= 99          # 100 independent clients, 100 different first waits
    assert all(len(w) == 3 for w in waits)
    assert hundred_default_clients(2024) == waits   # re-run from set_seed: the same numbers
    assert hundred_default_clients(7) != waits


def test_policies_built_inside_a_simulation_get_their_own_streams():
    def run(seed):
        async def main():
            return [Retry(max_attempts=2) for _ in range(50)]

        return retry_waits(sim.run(main, seed=seed), failures=1)

    waits = run(3)
    assert len({w[0] for w in waits}) >= 49
    assert run(3) == waits and run(4) != waits


def test_backoffs_without_a_generator_get_their_own_streams():
    seeding.set_seed(11)
    first = [Backoff(FullJitter(0.1, 10.0)).next_delay() for _ in range(100)]
    assert len(set(first)) >= 99
    seeding.set_seed(11)
    assert [Backoff(FullJitter(0.1, 10.0)).next_delay() for _ in range(100)] == first


def test_schedule_without_seed_is_a_new_client_each_time():
    seeding.set_seed(5)
    a, b = schedule("full", 5), schedule("full", 5)
    assert a != b
    seeding.set_seed(5)
    assert schedule("full", 5) == a
    assert schedule("full", 5, seed=1) == schedule("full", 5, seed=1)


def test_explicit_seed_gives_exactly_that_stream():
    a, b = Retry(seed=5), Retry(seed=5)
    assert a.rng.random() == b.rng.random() == seeding.rng("retry:retry", 5).random()
    assert Retry(seed=5, name="x").rng.random() != Retry(seed=5).rng.random()


def test_stream_is_reproducible_and_kinds_do_not_shift_each_other():
    seeding.set_seed(1)
    a = [seeding.stream("a").random() for _ in range(3)]
    b = seeding.stream("b").random()
    assert len(set(a)) == 3
    seeding.set_seed(1)
    assert seeding.stream("b").random() == b          # creating "a" streams did not shift "b"
    assert [seeding.stream("a").random() for _ in range(3)] == a
    seeding.set_seed(2)
    assert seeding.stream("a").random() != a[0]
    assert isinstance(seeding.stream("a"), random.Random)


@pytest.mark.parametrize("bad", [1.5, "1", True, None, float("nan")])
def test_set_seed_refuses_non_integers(bad):
    with pytest.raises(ValueError, match="seed"):
        seeding.set_seed(bad)


@pytest.mark.parametrize("bad", ["", 3, None])
def test_stream_kind_must_be_a_name(bad):
    with pytest.raises(ValueError, match="kind"):
        seeding.stream(bad)
