"""Shared HTTP: one pooled session, bearer auth, timeouts, retries with backoff, rate limiting.

Retry policy, and why:
- 429 means the request was not processed, so it is retried for every method after `Retry-After`
  (or backoff), and the pause holds every thread sharing the limiter.
- 5xx, timeouts and dropped connections are retried only for idempotent methods. A POST that may
  have reached the server is never resent: it raises `OutcomeUnknown` and the caller reconciles
  against live state. A connection that failed before anything was sent (refused, DNS, connect
  timeout) is safe to retry for any method.

The token lives only in the session's auth hook; it is validated up front (requests echoes bad
header values in its exceptions) and scrubbed from every message this module builds.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import random as random_module
import re
import threading
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError

from . import __version__
from .errors import CloudflareError, OutcomeUnknown, TokenError, VgmigrateError

log = logging.getLogger("vgmigrate.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# 501 Not Implemented / 505 Version Not Supported will not change on a retry.
_PERMANENT_5XX = frozenset({501, 505})
POOL_SIZE = 32  # >= 16 so `--parallel 8` (and a few helpers) never wait for or discard a connection
CONNECT_TIMEOUT_CAP = 10.0
LONG_WAIT_SECONDS = 30.0  # waits this long are logged at WARNING so a pause does not look like a hang
_TOKEN_SHAPE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: anything else cannot be a header


class NetworkError(VgmigrateError):
    """The API could not be reached (or kept dropping the connection) after every retry."""


class RetriesExhausted(CloudflareError):
    """The API kept answering 429 or 5xx; the message says how long to wait before running again."""

    def __init__(self, status, errors=(), messages=(), ray=None, method=None, path=None, attempts=1):
        self.attempts = attempts
        super().__init__(status, errors, messages, ray, method, path)

    def _describe(self):
        if self.status == 429:
            advice = "the API rate limit (1200 requests per 5 minutes) is used up: wait 5 minutes and run the command again"
        else:
            advice = "Cloudflare is having trouble: wait a few minutes and run the command again"
        return f"{super()._describe()}; gave up after {self.attempts} attempts: {advice}"


class _BearerAuth(requests.auth.AuthBase):
    """Holds the token so it is never in `session.headers` dumps, and so .netrc cannot override it."""

    def __init__(self, token):
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self):
        return "<BearerAuth ***>"


def check_token(token):
    """Return the stripped token, or raise TokenError without ever echoing it."""
    token = (token or "").strip()
    if not token:
        raise TokenError("no API token: set CLOUDFLARE_API_TOKEN (or pass --token)")
    if not _TOKEN_SHAPE.match(token):
        raise TokenError(
            "the API token contains spaces, control or non-ASCII characters: copy it again from the dashboard"
        )
    return token


def parse_retry_after(headers, now_wall=None):
    """Seconds to wait from `Retry-After` (delta-seconds or HTTP-date) or `retry-after-ms`; None if absent."""
    headers = _lower(headers)
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now_wall = time.time() if now_wall is None else now_wall
    return max(0.0, when.timestamp() - now_wall)


def parse_budget(headers, now_wall=None):
    """What the server says is left of its rate-limit budget: (remaining, reset_seconds, quota) or None.

    Understands the IETF draft (`Ratelimit: "default";r=50;t=30`, `Ratelimit-Policy: "burst";q=100;w=60`)
    and the older `x-ratelimit-remaining` / `x-ratelimit-reset` (seconds, epoch or HTTP-date) /
    `x-ratelimit-limit`. `quota` is None when the server did not say.
    """
    headers = _lower(headers)
    remaining = reset = quota = None
    draft = headers.get("ratelimit")
    if draft:
        # Several list members are possible; the tightest one governs.
        for member in draft.split(","):
            r = re.search(r"(?:^|;)\s*r=(\d+)", member)
            t = re.search(r"(?:^|;)\s*t=(\d+)", member)
            if r and t and (remaining is None or int(r.group(1)) < remaining):
                remaining, reset = int(r.group(1)), float(t.group(1))
        policy = headers.get("ratelimit-policy") or ""
        q = re.search(r"(?:^|;)\s*q=(\d+)", policy)
        quota = int(q.group(1)) if q else None
    if remaining is None and headers.get("x-ratelimit-remaining") is not None:
        try:
            remaining = int(float(headers["x-ratelimit-remaining"]))
        except ValueError:
            return None
        reset = _reset_seconds(headers.get("x-ratelimit-reset"), now_wall)
        try:
            quota = int(float(headers.get("x-ratelimit-limit")))
        except (TypeError, ValueError):
            quota = None
    if remaining is None or reset is None:
        return None
    return remaining, reset, quota


def _reset_seconds(value, now_wall):
    if value is None:
        return None
    now_wall = time.time() if now_wall is None else now_wall
    try:
        number = float(value)
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now_wall)
        except (TypeError, ValueError):
            return None
    # Large numbers are epoch timestamps, small ones are deltas.
    return max(0.0, number - now_wall) if number > 1e9 else max(0.0, number)


def _lower(headers):
    return {str(k).lower(): v for k, v in (headers or {}).items()}


class RateLimiter:
    """Client-side limiter shared by threads: a sliding window plus server-driven slow-downs.

    - Never more than `limit` requests in any `period` seconds.
    - `observe()` reads the server's budget: when it is low, requests are spaced so the rest of the
      budget lasts until the reset; when it is gone, everyone waits for the reset.
    - `pause_until()` (after a 429) holds every thread.

    `limit=None` drops the client-side window (for emulators without a limit, and benchmarks) but
    still obeys the server's headers and 429 pauses.
    """

    LOW_FRACTION = 0.1  # "low" = at most 10% of the quota left

    def __init__(self, limit=1200, period=300.0, clock=time.monotonic, sleep=time.sleep):
        if (limit is not None and limit < 1) or period <= 0:
            raise ValueError("limit must be None or >= 1, and period > 0")
        self.limit = limit
        self.period = float(period)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = collections.deque()
        self._hold_until = float("-inf")
        self._spacing = 0.0
        self._spacing_until = float("-inf")
        self._next_slot = float("-inf")

    def acquire(self):
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    if self.limit is not None:
                        self._sent.append(now)
                    if now < self._spacing_until:
                        self._next_slot = now + self._spacing
                    return
            self._sleep(wait)  # outside the lock, so other threads can observe and pause

    def _wait_needed(self, now):
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        wait = self._hold_until - now
        if now < self._spacing_until:
            wait = max(wait, self._next_slot - now)
        if self.limit is not None and len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.period - now)
        return wait

    def observe(self, headers):
        budget = parse_budget(headers)
        if budget is None:
            return
        remaining, reset, quota = budget
        low = max(1.0, (quota or self.limit or 1200) * self.LOW_FRACTION)
        with self._lock:
            now = self._clock()
            if remaining <= 0:
                self._hold_until = max(self._hold_until, now + reset)
            elif remaining <= low and reset > 0:
                self._spacing = reset / remaining
                self._spacing_until = now + reset
            else:
                self._spacing_until = float("-inf")

    def pause_until(self, seconds):
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))


def _timeouts(timeout):
    if isinstance(timeout, (tuple, list)):
        connect, read = timeout
        return float(connect), float(read)
    return min(float(timeout), CONNECT_TIMEOUT_CAP), float(timeout)


def _nothing_was_sent(exc):
    """True when the connection failed before any byte of the request left (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.ProxyError
    ):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the real cause
        # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses in urllib3 2.
        return isinstance(reason, ConnectTimeoutError)
    return False


_RETRYABLE_NETWORK = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class HttpClient:
    """One keep-alive session to one API base URL. Thread-safe; share one per process."""

    def __init__(
        self,
        base_url,
        token,
        *,
        timeout=30.0,
        limiter=None,
        max_retries=5,
        backoff_base=0.5,
        backoff_cap=30.0,
        user_agent=f"vgmigrate/{__version__}",
        sleep=time.sleep,
        random=None,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = check_token(token)
        self.timeout = _timeouts(timeout)
        self.limiter = limiter if limiter is not None else RateLimiter(sleep=sleep)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random if random is not None else random_module.Random()
        self._stats_lock = threading.Lock()
        self.calls = 0
        self.http_seconds = 0.0

        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.auth = _BearerAuth(self._token)
        self.session.headers["User-Agent"] = user_agent
        # Every call goes to one host: read the proxy and CA-bundle environment once, instead of
        # on every request as requests does (a measurable cost over a 1,500-call scan).
        env = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.proxies.update(env["proxies"])
        self.session.verify = env["verify"]
        self.session.trust_env = False

    def __repr__(self):
        return f"HttpClient({self.base_url!r})"

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, *, params=None, json=None):
        """Send one API call, retrying what is safe to retry; return the final response.

        Returns 2xx, 3xx and 4xx responses (other than 429) for the caller to interpret. Raises
        RetriesExhausted (429/5xx), NetworkError, or OutcomeUnknown for a POST/PATCH that may have
        been applied.
        """
        method = method.upper()
        url = self.base_url + path
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        attempt = 0
        while True:
            self.limiter.acquire()
            started = time.monotonic()
            try:
                response = self.session.request(
                    method, url, params=params, json=json, timeout=self.timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                self._count(started)
                delay, wait, why = self._after_failure(method, path, exc, attempt)
            else:
                self._count(started)
                self.limiter.observe(response.headers)
                verdict = self._after_response(method, path, response, attempt)
                if verdict is None:
                    return response
                delay, wait, why = verdict
            attempt += 1
            level = logging.WARNING if wait >= LONG_WAIT_SECONDS else logging.DEBUG
            log.log(level, "%s %s: %s; retry %d/%d in %.1fs", method, path, why, attempt, self.max_retries, wait)
            if delay > 0:
                self._sleep(delay)

    def _count(self, started):
        elapsed = time.monotonic() - started
        with self._stats_lock:
            self.calls += 1
            self.http_seconds += elapsed

    def backoff(self, attempt):
        """Capped exponential backoff with full jitter."""
        return self._random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _after_response(self, method, path, response, attempt):
        """(seconds to sleep here, seconds until the retry, reason) to retry; None to return the response."""
        status = response.status_code
        if status == 429:
            self._give_up_if_exhausted(method, path, response, attempt)
            wait = parse_retry_after(response.headers)
            if wait is None:
                wait = self.backoff(attempt)
            # Hold every thread; this thread waits it out in its next acquire().
            self.limiter.pause_until(wait)
            return 0.0, wait, "HTTP 429 (all requests paused)"
        if status >= 500 and status not in _PERMANENT_5XX:
            if method not in IDEMPOTENT_METHODS:
                # The server may have applied it before failing: never resend a write that is not idempotent.
                raise OutcomeUnknown(method, path, CloudflareError.from_response(response, method, path, redact=self.redact))
            self._give_up_if_exhausted(method, path, response, attempt)
            delay = self.backoff(attempt)
            return delay, delay, f"HTTP {status}"
        return None

    def _give_up_if_exhausted(self, method, path, response, attempt):
        if attempt >= self.max_retries:
            raise self._error(method, path, response, attempt + 1)

    def _error(self, method, path, response, attempts):
        return RetriesExhausted.from_response(response, method, path, redact=self.redact, attempts=attempts)

    def _after_failure(self, method, path, exc, attempt):
        safe_to_resend = _nothing_was_sent(exc) or method in IDEMPOTENT_METHODS
        if not isinstance(exc, _RETRYABLE_NETWORK) or isinstance(exc, requests.exceptions.SSLError):
            raise NetworkError(self._network_message(method, path, exc, attempt + 1, final=True)) from None
        if not safe_to_resend:
            raise OutcomeUnknown(method, path, exc) from None
        if attempt >= self.max_retries:
            raise NetworkError(self._network_message(method, path, exc, attempt + 1)) from None
        delay = self.backoff(attempt)
        return delay, delay, type(exc).__name__

    def _network_message(self, method, path, exc, attempts, final=False):
        host = urlsplit(self.base_url).netloc or self.base_url
        reason = self.redact(_short_reason(exc))
        if isinstance(exc, requests.exceptions.SSLError):
            advice = "check the system clock, proxy and CA bundle (REQUESTS_CA_BUNDLE), then run again"
        elif final:
            advice = "check CLOUDFLARE_BASE_URL, then run again"
        else:
            advice = "check the network, proxy and CLOUDFLARE_BASE_URL, then run the command again"
        tries = "" if final else f" after {attempts} attempts"
        return f"{method} {path}: could not reach {host}{tries} ({type(exc).__name__}: {reason}); {advice}"

    def redact(self, text):
        return str(text).replace(self._token, "***")


def _short_reason(exc):
    """The innermost cause in a few words, without the URL noise requests wraps around it."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    # urllib3 prefixes "<HTTPConnection object at 0x..>: "; keep only what a person can act on.
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", text)
    return " ".join(text.split())[:160] or type(exc).__name__
