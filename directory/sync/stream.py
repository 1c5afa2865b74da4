"""Page streaming for a pull: Cognito listings fetched ahead of the database, regrouped into batches.

A listing (ListUsers, ListUsersInGroup) is read by a background thread into a small
bounded queue while the pull's thread maps and writes the pages already fetched, so the
network and the database overlap and memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class PageCounter(Protocol):
    """What batching needs of a pull's context (sync.pull.PullContext is one)."""

    pages: int
    batch_size: int


# ListUsers pages fetched ahead of the database (60 users each): bounds memory, hides latency.
PREFETCH_PAGES = 8


class Prefetch:
    """Iterate a page iterator that a background thread runs ahead, through a bounded queue.

    The thread only talks to Cognito (the gateway's botocore client is thread-safe); the
    database stays on the caller's thread. An error in the thread is raised to the caller
    at the point of the listing it interrupted; `close()` stops the thread early.
    """

    def __init__(self, pages: Iterator[list[dict[str, Any]]], depth: int = PREFETCH_PAGES) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), name="cognito-prefetch", daemon=True)
        self._thread.start()

    def _run(self, pages: Iterator[list[dict[str, Any]]]) -> None:
        try:
            for page in pages:
                if not self._put(("page", page)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(("error", exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            kind, value = self._queue.get()
            if kind == "page":
                yield value
            elif kind == "done":
                return
            else:
                raise value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def batched_pages(
    ctx: PageCounter, pages: Iterable[list[dict[str, Any]]], *, count_pages: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Pages regrouped into batches of about `batch_size` records (SyncRun.pages counts the user listing's)."""
    batch: list[dict[str, Any]] = []
    for page in pages:
        if count_pages:
            ctx.pages += 1
        batch.extend(page)
        if len(batch) >= ctx.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
