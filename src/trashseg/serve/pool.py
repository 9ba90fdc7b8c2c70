"""A bounded pool for inference: at most `workers` jobs run and `queue` wait; the rest are refused at once.

Each waiting upload holds its decoded image, so an unbounded queue lets a crowd of clients exhaust the server's
memory; refusing early (503 + Retry-After) keeps the ones admitted fast. A job that times out is taken off the queue
if it has not started; one already running cannot be interrupted, so it keeps its slot until it finishes, and the
pool never holds more than workers + queue jobs, timed out or not.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolFull(Exception):
    """Every worker is busy and the queue is full."""

    def __init__(self, retry_after: int):
        super().__init__(f"busy: retry in {retry_after} s")
        self.retry_after = retry_after


class InferencePool:
    def __init__(self, workers: int, queue: int):
        self.workers, self.capacity = workers, workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="trashseg-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self._mean_s = 1.0  # running mean of a job's duration, for Retry-After

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the jobs ahead, spread over the workers, at their mean duration."""
        return max(1, math.ceil(self._mean_s * self._pending / self.workers))

    async def run(self, job: Callable[[], T], timeout: float) -> T:
        """`job`'s result; PoolFull when no slot is free, TimeoutError after `timeout` seconds (waiting included)."""
        with self._lock:
            if self._pending >= self.capacity:
                raise PoolFull(self.retry_after())
            self._pending += 1
        future = self._executor.submit(self._timed, job)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            future.cancel()  # off the queue if not started; a running job frees its slot when it ends
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def _timed(self, job: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return job()
        finally:
            self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - start)

    def _release(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
