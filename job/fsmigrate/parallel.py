"""Bounded thread-pool work inside one Spark task (writes, deletes, reads of the online store).

At most 2 × workers chunks are in flight, so a partition is streamed, never held in memory.
When a worker raises, the others stop at their next `check` and queued chunks are cancelled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Stopped(Exception):
    """Raised inside a worker once another worker has aborted the task."""


def check(stop: threading.Event) -> None:
    if stop.is_set():
        raise Stopped


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def bounded_map(fn: Callable[[list[T]], R], items: Iterable[T], chunk_size: int, workers: int,
                stop: threading.Event, name: str) -> Iterator[R]:
    """fn over chunks of items on `workers` threads; yields each chunk's result as it is done."""
    in_flight: set[Future] = set()

    def results(done: Iterable[Future]) -> Iterator[R]:
        for fut in done:
            try:
                yield fut.result()
            except Stopped:
                pass

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        for chunk in chunks(items, chunk_size):
            while len(in_flight) >= 2 * workers:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from results(done)
            if stop.is_set():
                break
            in_flight.add(pool.submit(fn, chunk))
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            yield from results(done)
    except BaseException:
        stop.set()
        for fut in in_flight:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
