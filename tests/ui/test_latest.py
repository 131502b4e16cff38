"""LatestRun: a newer control move supersedes the older run; failures are shown (chapters 1, 5)."""
import asyncio

import ipywidgets as W

import labkit
from labkit.ui.latest import LatestRun


def test_a_newer_run_cancels_the_older_and_errors_reach_the_status(run):
    async def main():
        status = W.HTML()
        latest = LatestRun(status, name="test-latest")
        done = []

        async def slow():
            await asyncio.sleep(30)
            done.append("slow")

        async def quick():
            done.append("quick")

        first = latest.start(slow, "running slow…")
        assert status.value == "running slow…"
        latest.start(quick, "running quick…")
        await latest.wait(5)
        await asyncio.sleep(0)
        cancelled = first.cancelled()

        async def broken():
            raise ValueError("size must be a finite number in [1, 10], got 0")

        latest.start(broken, "running…")
        await latest.wait(5)
        shown = status.value
        await labkit.shutdown()
        return done, cancelled, shown

    done, cancelled, shown = run(main())
    assert done == ["quick"] and cancelled
    assert "size must be a finite number" in shown and "#b00" in shown
