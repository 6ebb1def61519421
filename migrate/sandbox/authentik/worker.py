"""authentik's background worker, as the sandbox models it.

A real authentik answers the API request that changes a user, a group or a provider, and only
then does its dramatiq worker push the change to Cloudflare: seconds later, on a few threads, in no
promised order, retrying a failed push with exponential backoff (5 retries, at most an hour apart).
This worker does the same with a compressed clock: each message waits `delay` (a random span)
before it may run, `threads` messages run at once, and a message whose job raises `Retry` is queued
again after `backoff * 2**retries` seconds (with jitter), `max_retries` times.

Tests that act as a person who waits call `drain()`; nothing in vgmigrate may rely on it.
"""

import heapq
import itertools
import random
import threading
import time


class Retry(Exception):
    """Raised by a job to be run again later (authentik's `raise Retry()` on a transient error)."""


class Message:
    def __init__(self, job, uid):
        self.job, self.uid = job, uid
        self.retries = 0
        self.done = threading.Event()
        self.result = None
        self.failed = False


class Worker:
    def __init__(self, threads=2, delay=(0.02, 0.25), backoff=0.4, max_retries=5, random_seed=0, on_give_up=None):
        self.delay, self.backoff, self.max_retries = delay, backoff, max_retries
        self.on_give_up = on_give_up or (lambda message, err: None)
        self._random = random.Random(random_seed)
        self._queue = []  # (eta, n, message)
        self._n = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._stopping = False
        self._threads = [threading.Thread(target=self._loop, name=f"authentik-worker-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    # ---- API -----------------------------------------------------------------------------------

    def send(self, job, uid=None, delay=None):
        """Queue `job` to run after a random delay; returns its Message."""
        message = Message(job, uid)
        with self._cond:
            wait = self._random.uniform(*self.delay) if delay is None else delay
            heapq.heappush(self._queue, (time.monotonic() + wait, next(self._n), message))
            self._cond.notify()
        return message

    @property
    def busy(self):
        """Every thread is running a message (a new one would wait)."""
        with self._cond:
            return self._running >= len(self._threads)

    @property
    def pending(self):
        with self._cond:
            return len(self._queue) + self._running

    def drain(self, timeout=30.0):
        """Wait until nothing is queued or running (retries included); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self):
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    # ---- the threads ---------------------------------------------------------------------------

    def _loop(self):
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    if self._queue and self._queue[0][0] <= now:
                        break
                    self._cond.wait(min(self._queue[0][0] - now, 0.2) if self._queue else 0.2)
                if self._stopping:
                    return
                _, _, message = heapq.heappop(self._queue)
                self._running += 1
            try:
                message.result = message.job()
                finished = True
            except Retry as err:
                finished = not self._again(message, err)
            except Exception as err:  # noqa: BLE001 - dramatiq retries any exception of a task
                finished = not self._again(message, err)
            with self._cond:
                self._running -= 1
                self._cond.notify_all()
            if finished:
                message.done.set()

    def _again(self, message, err):
        """Queue the message again with backoff; False when its retries are used up."""
        if message.retries >= self.max_retries:
            message.failed = True
            self.on_give_up(message, err)
            return False
        message.retries += 1
        wait = self.backoff * 2 ** (message.retries - 1)
        with self._cond:
            wait = self._random.uniform(wait / 2, wait)
            heapq.heappush(self._queue, (time.monotonic() + wait, next(self._n), message))
            self._cond.notify()
        return True
