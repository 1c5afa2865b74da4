"""Page streaming for a pull: several Cognito listings run at once, their pages merged into one queue.

Each listing (ListUsers for one `sub` prefix, ListUsersInGroup for one group) runs on a thread
of a small pool and puts its pages into one bounded queue; the pull's thread takes them out in
arrival order and maps and writes them, so the network, the shared request budget and the
database overlap, and memory stays flat (the queue holds at most `depth` pages, each thread
one more). Listing threads only talk to Cognito (the gateway's botocore client is
thread-safe); the database stays on the pull's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

Page = list[dict[str, Any]]
# ("page", key, records) for each page; then ("done", key, None) or ("error", key, exception).
Event = tuple[Literal["page", "done", "error"], Hashable, Any]

# Pages waiting for the pull's thread, per listing thread: bounds memory, hides latency.
PAGES_AHEAD_PER_THREAD = 4
MIN_DEPTH = 8


class Fanout:
    """Run up to `threads` listings at once; their pages come back through `get()`.

    `start(key, pages)` runs the page iterator `pages()` on a free thread. The pull's thread
    calls `get()` for the next event. An exception in a listing is handed over as that
    listing's "error" event (a BaseException too: it is the caller's to re-raise). `cancel(key)`
    stops one listing at its next page; `close()` stops them all and waits for the threads.
    """

    def __init__(self, threads: int, *, depth: int | None = None, name: str = "cognito-listing") -> None:
        self.threads = max(1, threads)
        size = depth if depth is not None else max(MIN_DEPTH, self.threads * PAGES_AHEAD_PER_THREAD)
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._cancelled: set[Hashable] = set()
        self._lock = threading.Lock()
        self._active: set[Hashable] = set()
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix=name)

    @property
    def active(self) -> int:
        """Listings started and not yet finished (their last event may still be queued)."""
        with self._lock:
            return len(self._active)

    def start(self, key: Hashable, pages: Callable[[], Iterator[Page]]) -> None:
        with self._lock:
            self._active.add(key)
            self._cancelled.discard(key)
        self._executor.submit(self._run, key, pages)

    def cancel(self, key: Hashable) -> None:
        with self._lock:
            self._cancelled.add(key)

    def _stopped(self, key: Hashable) -> bool:
        return self._stop.is_set() or key in self._cancelled

    def _run(self, key: Hashable, pages: Callable[[], Iterator[Page]]) -> None:
        iterator: Iterator[Page] | None = None
        try:
            iterator = pages()
            for page in iterator:
                if not self._put(("page", key, page)):
                    return
            self._put(("done", key, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the pull's thread
            self._put(("error", key, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            with self._lock:
                self._active.discard(key)

    def _put(self, event: Event) -> bool:
        while not self._stopped(event[1]):
            try:
                self._queue.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when none came within `timeout` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Fanout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
