import asyncio
import gc
import warnings

import pytest


@pytest.fixture
def run():
    """Run a coroutine on a fresh loop, then check labkit left no unclosed sessions behind."""
    def runner(coro, timeout_s=60):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            result = asyncio.run(asyncio.wait_for(coro, timeout_s))
            gc.collect()
        # zmq sockets are the notebook tests' kernel clients, collected late: not labkit's
        leaks = [str(w.message) for w in caught
                 if "nclosed" in str(w.message) and "zmq" not in str(w.message)]
        assert not leaks, leaks
        return result
    return runner
