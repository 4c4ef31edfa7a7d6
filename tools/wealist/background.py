"""Work that waits on the network, started now and collected later: the registry lookups and the
Argo CD gate's questions leave while a promotion renders and reads git."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_background(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work`` in a daemon thread (a run that ends meanwhile, refused or failed, does not
    wait for a slow server). The returned function waits for it, then returns its result or raises
    what it raised, in the caller's thread."""
    result: list[T] = []
    failure: list[Exception] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as exc:  # raised again by collect(), where the caller handles it
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def collect() -> T:
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    return collect
