"""Helpers for tests of background work: wait for a condition, list the other tasks."""
import asyncio


async def until(condition, timeout_s=30.0):
    """Poll `condition()` every 50 ms; a generous bound, so a busy machine cannot flake it."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def other_tasks():
    """Every task of the running loop but the current one."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
