"""StopFlag: one stop request that threads and asyncio tasks wait on without polling."""

from __future__ import annotations

import asyncio
import threading

from servicekit.runner import StopFlag
from tests.helpers.wait import next_tick


def test_set_from_another_thread_wakes_a_task() -> None:
    flag = StopFlag()

    async def main() -> None:
        waiter = asyncio.create_task(flag.wait_async())
        await next_tick()  # let it register
        threading.Thread(target=flag.set).start()
        await asyncio.wait_for(waiter, timeout=10)

    asyncio.run(main())
    assert flag.is_set() and flag.wait(0)


def test_already_set_returns_at_once_and_waiters_are_forgotten() -> None:
    flag = StopFlag()
    flag.set()
    asyncio.run(asyncio.wait_for(flag.wait_async(), timeout=10))
    assert not flag._waiters


def test_tasks_on_two_loops_in_two_threads_are_both_woken() -> None:
    flag = StopFlag()
    woken: list[str] = []
    ready = threading.Barrier(3)

    def loop_thread(name: str) -> None:
        async def main() -> None:
            t = asyncio.create_task(flag.wait_async())
            await next_tick()
            ready.wait(10)
            await asyncio.wait_for(t, timeout=10)
            woken.append(name)

        asyncio.run(main())

    threads = [threading.Thread(target=loop_thread, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    ready.wait(10)
    flag.set()
    for t in threads:
        t.join(10)
    assert sorted(woken) == ["a", "b"]


def test_set_while_this_thread_holds_the_lock_does_not_deadlock() -> None:
    """A signal handler runs on the main thread, possibly while it is inside wait_async()."""
    flag = StopFlag()
    done = threading.Event()

    def handler_interrupting_a_registration() -> None:
        with flag._waiters_lock:
            flag.set()
        done.set()

    t = threading.Thread(target=handler_interrupting_a_registration, daemon=True)
    t.start()
    assert done.wait(10), "set() deadlocked on its own lock"
