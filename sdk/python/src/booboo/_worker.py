"""A bounded queue drained by one daemon thread.

The application's threads only ever append to the queue (or find it full);
everything slow happens on the worker thread. The queue is a
``collections.deque``, whose ``append`` is one C call and, unlike a
``queue.Queue`` or ``SimpleQueue``, wakes no one: waking a waiting thread
costs the caller a context switch on a busy machine, the largest part of a
capture's cost. So the worker, once it has drained the queue, looks again
every few milliseconds for a while (``POLL_SECONDS`` for ``DOZE_SECONDS``),
and only then sleeps until the next item wakes it. An event therefore
leaves at most a few milliseconds later than it would otherwise, a burst of
events wakes the worker at most once, and an idle process has no polling
thread. Waiting for the queue to drain (``flush``) puts a marker in it,
wakes the worker and waits until it reaches the marker.

After ``os.fork()`` the child gets a fresh queue and, on its first item, a
thread of its own: the parent's pending items stay the parent's to send.
"""

import threading
import time
from collections import deque

QUEUE_FULL = "queue_full"
CLOSED = "closed"
NO_THREAD = "no_thread"

POLL_SECONDS = 0.01
"""How often a worker that just drained its queue looks again."""
DOZE_SECONDS = 0.5
"""How long it keeps looking before it sleeps until woken."""


class _Stop:
    """Tells the worker thread to end."""


class Worker:
    def __init__(self, capacity, process, on_exit=None, name="booboo-sender"):
        self.capacity = capacity
        self._process = process
        self._on_exit = on_exit
        self._name = name
        self._reset()

    def _reset(self):
        self._items = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._thread = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.stop = threading.Event()
        """Set when the worker is closed, to cut waits between retries short."""

    def after_fork_in_child(self):
        # The locks may have been held by a thread that does not exist in the
        # child, and the queue holds the parent's events: start over.
        self._reset()

    def submit(self, item):
        """Queue ``item``; return None, or the reason it was not queued."""
        if self._closed:
            return CLOSED
        if len(self._items) >= self.capacity:
            return QUEUE_FULL
        if self._thread is None and not self._start():
            return NO_THREAD
        self._items.append(item)
        # Read after the append: a worker that decides to sleep sets the flag
        # first and then looks at the queue, so one of the two sees the other.
        if self._sleeping:
            self._wake.set()
        return None

    def _start(self):
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # at interpreter shutdown, or out of threads
                    return False
                self._thread = thread
        return True

    def pending(self):
        return len(self._items)

    def flush(self, timeout):
        """Wait until everything submitted so far is processed; False on timeout."""
        if self._thread is None or self._closed:
            return len(self._items) == 0
        reached = threading.Event()
        self._items.append(reached)  # the queue is FIFO: reaching it means all before it is done
        self._wake.set()
        return reached.wait(timeout)

    def close(self, timeout):
        """Flush for at most ``timeout`` seconds, then stop; return the items left unsent."""
        self.flush(timeout)
        self._closed = True
        self.stop.set()
        left = []
        while True:
            try:
                item = self._items.popleft()
            except IndexError:
                break
            if isinstance(item, threading.Event):
                item.set()  # nobody waits for a marker of a closed worker
            elif not isinstance(item, _Stop):
                left.append(item)
        if self._thread is not None:
            self._items.append(_Stop())
            self._wake.set()
        return left

    def _next(self):
        """The next item, waiting for one as the module's docstring says."""
        items, wake = self._items, self._wake
        drained_at = None
        while True:
            try:
                return items.popleft()
            except IndexError:
                pass
            now = time.monotonic()
            if drained_at is None:
                drained_at = now
            if now - drained_at < DOZE_SECONDS:
                wake.wait(POLL_SECONDS)
            else:
                self._sleeping = True
                if not items:
                    wake.wait()
                self._sleeping = False
                drained_at = None
            wake.clear()

    def _run(self):
        while True:
            item = self._next()
            if isinstance(item, threading.Event):
                item.set()
                continue
            if isinstance(item, _Stop):
                break
            try:
                self._process(item)
            except BaseException:
                # The process callback reports its own failures; this is the
                # last line that keeps the thread alive whatever happens.
                pass
        if self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:
                pass
