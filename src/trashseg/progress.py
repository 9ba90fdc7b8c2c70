"""The resumable per-image loop that every stage writing a folder of results repeats (predict, CRF, ensembles,
overlays, pseudo-labels): list what is left, compute it, write each result (atomically, by the caller's writer),
and show progress. Stages open their output folder first (``PredictionFolder.init`` or ``remove_stale_temps``), so
that what a killed run left half-written is gone before "what is left" is decided.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Item = TypeVar("Item")
Result = TypeVar("Result")


def configure_logging(verbosity: int) -> None:
    """trashseg's log lines on stderr, beside the progress bars: -1 errors only (``--quiet``), 0 warnings (the
    default), 1 info (``-v``: weights converted, copy-paste classes chosen...), 2 and more debug (``-vv``)."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("trashseg")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):  # once per process, however often called
        logger.addHandler(RichHandler(console=Console(stderr=True), show_path=False, markup=False))
    logger.setLevel(level)


def progress_bar() -> Progress:
    """Shared look for long loops: count, img/s and ETA (on rich's console, which the CLI prints to as well)."""
    return Progress(
        TextColumn("{task.description}", markup=False),  # descriptions name files and splits: text, not markup
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TimeRemainingColumn(),
    )


@dataclass(frozen=True)
class LoopStats:
    done: int  # items computed and written by this call
    skipped: int  # items already finished by an earlier run
    seconds: float

    @property
    def per_second(self) -> float | None:
        return self.done / self.seconds if self.done and self.seconds else None


def for_each_pending(
    items: Sequence[Item],
    *,
    label: str,
    finished: Callable[[Item], bool],
    compute: Callable[[list[Item]], Iterable[Result]],
    write: Callable[[Item, Result], None],
    writers: int = 0,
) -> LoopStats:
    """Write ``compute(todo)``'s results, in order, for the `items` not `finished` yet.

    `compute` receives the whole list at once and yields one result per item, so it may batch (predict) or
    pipeline over worker processes (CRF) as it likes; `write` stores one result, atomically. With `writers`, that
    many threads write while `compute` goes on (`write` must then be thread-safe); an item counts on the bar
    once its write has finished, and a failed write stops the loop with its error.
    """
    todo = [item for item in items if not finished(item)]
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(label, total=len(todo), rate="-")
        pairs = zip(todo, compute(todo), strict=True)
        written = _threaded(pairs, write, writers) if writers else _inline(pairs, write)
        for count in written:
            bar.update(task, advance=1, rate=f"{count / (time.perf_counter() - start):.1f}")
    return LoopStats(done=len(todo), skipped=len(items) - len(todo), seconds=time.perf_counter() - start)


def _inline(pairs: Iterable[tuple[Item, Result]], write: Callable[[Item, Result], None]) -> Iterator[int]:
    """Each write in turn; yields the count written so far."""
    for count, (item, result) in enumerate(pairs, start=1):
        write(item, result)
        yield count


def _threaded(
    pairs: Iterable[tuple[Item, Result]], write: Callable[[Item, Result], None], writers: int
) -> Iterator[int]:
    """Writes in a pool of `writers` threads (PNG encoding and fsync release the GIL), at most twice that many
    results waiting, so memory stays bounded however far compute could run ahead; yields the count of writes
    finished, in order."""
    pending: deque[Future[None]] = deque()
    count = 0
    with ThreadPoolExecutor(writers, thread_name_prefix="write") as pool:
        try:
            for item, result in pairs:
                pending.append(pool.submit(write, item, result))
                while pending and (len(pending) > 2 * writers or pending[0].done()):
                    pending.popleft().result()
                    count += 1
                    yield count
            while pending:
                pending.popleft().result()
                count += 1
                yield count
        except BaseException:
            pool.shutdown(cancel_futures=True)  # what waits in the queue is dropped; a rerun resumes it
            raise
