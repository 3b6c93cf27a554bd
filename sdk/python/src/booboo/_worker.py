"""A bounded queue drained by one daemon thread.

The application's threads only ever append to the queue (or find it full);
everything slow happens on the worker thread. After ``os.fork()`` the child
gets a fresh queue and, on its first item, a thread of its own: the parent's
pending items stay the parent's to send.
"""

import threading
import time
from collections import deque

QUEUE_FULL = "queue_full"
CLOSED = "closed"
NO_THREAD = "no_thread"


class Worker:
    def __init__(self, capacity, process, on_exit=None, name="booboo-sender"):
        self.capacity = capacity
        self._process = process
        self._on_exit = on_exit
        self._name = name
        self._reset()

    def _reset(self):
        self._condition = threading.Condition(threading.Lock())
        self._items = deque()
        self._submitted = 0
        self._finished = 0
        self._thread = None
        self._closed = False
        self.stop = threading.Event()
        """Set when the worker is closed, to cut waits between retries short."""

    def after_fork_in_child(self):
        # The locks may have been held by a thread that does not exist in the
        # child, and the queue holds the parent's events: start over.
        self._reset()

    def submit(self, item):
        """Queue ``item``; return None, or the reason it was not queued."""
        with self._condition:
            if self._closed:
                return CLOSED
            if len(self._items) >= self.capacity:
                return QUEUE_FULL
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # at interpreter shutdown, or out of threads
                    return NO_THREAD
                self._thread = thread
            self._items.append(item)
            self._submitted += 1
            self._condition.notify()
        return None

    def pending(self):
        with self._condition:
            return self._submitted - self._finished

    def flush(self, timeout):
        """Wait until everything submitted so far is processed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            target = self._submitted
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def close(self, timeout):
        """Flush for at most ``timeout`` seconds, then stop; return the items left unsent."""
        self.flush(timeout)
        with self._condition:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._finished += len(left)
            self.stop.set()
            self._condition.notify_all()
        return left

    def _run(self):
        condition = self._condition
        items = self._items
        while True:
            with condition:
                while not items:
                    if self._closed:
                        if self._on_exit is not None:
                            try:
                                self._on_exit()
                            except Exception:
                                pass
                        return
                    condition.wait()
                item = items.popleft()
            try:
                self._process(item)
            except BaseException:
                # The process callback reports its own failures; this is the
                # last line that keeps the thread alive whatever happens.
                pass
            finally:
                with condition:
                    self._finished += 1
                    condition.notify_all()
