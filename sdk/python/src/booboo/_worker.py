"""A bounded queue drained by one daemon thread.

The application's threads only ever append to the queue (or find it full);
everything slow happens on the worker thread. The queue is a
``queue.SimpleQueue``, whose ``put`` is a few C instructions, so submitting
costs the application almost nothing. Waiting for the queue to drain
(``flush``) puts a marker in it and waits until the worker reaches it.

After ``os.fork()`` the child gets a fresh queue and, on its first item, a
thread of its own: the parent's pending items stay the parent's to send.

On Linux the worker thread asks for the ``SCHED_BATCH`` policy (same share
of the CPU as any other thread, no privilege needed): waking it for an event
then never preempts the application's thread that queued it. Without that,
on a busy machine the scheduler switches to the sender in the middle of
``capture_exception()`` and the application waits for its turn back.
"""

import os
import threading
from queue import Empty, SimpleQueue

QUEUE_FULL = "queue_full"
CLOSED = "closed"
NO_THREAD = "no_thread"


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
        self._items = SimpleQueue()
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
        if self._items.qsize() >= self.capacity:
            return QUEUE_FULL
        if self._thread is None and not self._start():
            return NO_THREAD
        self._items.put(item)
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
        return self._items.qsize()

    def flush(self, timeout):
        """Wait until everything submitted so far is processed; False on timeout."""
        if self._thread is None or self._closed:
            return self._items.qsize() == 0
        reached = threading.Event()
        self._items.put(reached)  # the queue is FIFO: reaching it means all before it is done
        return reached.wait(timeout)

    def close(self, timeout):
        """Flush for at most ``timeout`` seconds, then stop; return the items left unsent."""
        self.flush(timeout)
        self._closed = True
        self.stop.set()
        left = []
        while True:
            try:
                item = self._items.get_nowait()
            except Empty:
                break
            if not isinstance(item, (threading.Event, _Stop)):
                left.append(item)
        if self._thread is not None:
            self._items.put(_Stop())
        return left

    def _run(self):
        _yield_to_the_application()
        items = self._items
        while True:
            item = items.get()
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


def _yield_to_the_application():
    """Let the calling thread (the sender) never preempt others when it wakes up (Linux).

    ``SCHED_BATCH`` keeps the thread's nice value and so its share of the
    CPU; it only takes away preemption on wake-up, so the sender runs as soon
    as a core is free or at the next scheduler tick. Pid 0 is this thread only.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it
        pass
