"""Rate limiting and fault injection: seeded, deterministic, thread-safe."""

import math
import random
import re
import threading
import time
from collections import deque

FAULT_KINDS = ("5xx", "429", "lose", "timeout")


class RateLimiter:
    """Sliding window: at most `limit` accepted requests per `window` seconds, per key (token).

    Rejected requests do not count, so a client that waits `Retry-After` gets through.
    """

    def __init__(self, limit, window, clock=time.monotonic):
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs at least 1 request per a positive number of seconds")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits = {}
        self._lock = threading.Lock()

    def hit(self, key):
        """Returns (allowed, remaining, seconds_to_reset); seconds are integers rounded up."""
        with self._lock:
            now = self._clock()
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, 0, max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            return True, self.limit - len(hits), max(1, math.ceil(hits[0] + self.window - now))


class Faults:
    """Decides, per request, whether to misbehave: targeted injections first, then random rates."""

    def __init__(self, fail_5xx=0.0, lose_responses=0.0, timeouts=0.0, random_seed=0):
        for name, rate in (("fail_5xx", fail_5xx), ("lose_responses", lose_responses), ("timeouts", timeouts)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {rate}")
        self.rates = (("5xx", fail_5xx), ("lose", lose_responses), ("timeout", timeouts))
        self._random = random.Random(random_seed)
        self._statuses = random.Random(f"5xx-{random_seed}")
        self._injected = []
        self._lock = threading.Lock()

    def inject(self, method, path_regex, kind, times=1):
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._injected.append([(method or "*").upper(), re.compile(path_regex), kind, times])

    def pick(self, method, full_path, api_path):
        """The fault for this request, or None. Patterns match the path with or without /client/v4."""
        with self._lock:
            for entry in self._injected:
                want_method, pattern, kind, _ = entry
                if want_method not in ("*", method):
                    continue
                if pattern.search(api_path) or pattern.search(full_path):
                    entry[3] -= 1
                    if entry[3] == 0:
                        self._injected.remove(entry)
                    return kind
            if not any(rate for _, rate in self.rates):
                return None
            draw = self._random.random()
            for kind, rate in self.rates:
                if draw < rate:
                    return kind
                draw -= rate
            return None

    def server_error_status(self):
        with self._lock:
            return self._statuses.choice((500, 502, 503))

    def pending(self):
        with self._lock:
            return [(m, p.pattern, k, n) for m, p, k, n in self._injected]
