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
from .errors import AuthentikError, CloudflareError, OutcomeUnknown, TokenError, VgmigrateError

log = logging.getLogger("vgmigrate.http")
ratelimit_log = logging.getLogger("vgmigrate.ratelimit")  # waits for the rate limit; the CLI shows them

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

    RATE_ADVICE = "the API rate limit (1200 requests per 5 minutes) is used up: wait 5 minutes and run the command again"
    TROUBLE_ADVICE = "Cloudflare is having trouble: wait a few minutes and run the command again"

    def __init__(self, status, errors=(), messages=(), ray=None, method=None, path=None, attempts=1):
        self.attempts = attempts
        super().__init__(status, errors, messages, ray, method, path)

    def _describe(self):
        advice = self.RATE_ADVICE if self.status == 429 else self.TROUBLE_ADVICE
        return f"{super()._describe()}; gave up after {self.attempts} attempts: {advice}"


class AuthentikRetriesExhausted(RetriesExhausted, AuthentikError):
    """Authentik kept answering 429 or 5xx (an AuthentikError, so it reads "Authentik API ... failed")."""

    RATE_ADVICE = "Authentik kept answering 429 (too many requests): wait a minute and run the command again"
    TROUBLE_ADVICE = "Authentik is having trouble (is its worker or database down?): wait a few minutes and run the command again"


class _BearerAuth(requests.auth.AuthBase):
    """Holds the token so it is never in `session.headers` dumps, and so .netrc cannot override it.
    `scheme` is "Bearer" but for Okta's API tokens ("SSWS")."""

    def __init__(self, token, scheme="Bearer"):
        self._token = token
        self._scheme = scheme

    def __call__(self, request):
        request.headers["Authorization"] = f"{self._scheme} {self._token}"
        return request

    def __repr__(self):
        return "<BearerAuth ***>"


def check_token(token):
    """Return the stripped token, or raise TokenError without ever echoing it."""
    token = (token or "").strip()
    if not token:
        raise TokenError("no API token; set CLOUDFLARE_API_TOKEN (or pass --token)")
    if not _TOKEN_SHAPE.match(token):
        raise TokenError(
            "the API token contains spaces, control or non-ASCII characters; copy it again from the dashboard"
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
    `x-ratelimit-limit`, also spelt `x-rate-limit-*` (Okta). `quota` is None when the server did not say.
    """
    headers = _lower(headers)
    for name in ("limit", "remaining", "reset"):
        if f"x-rate-limit-{name}" in headers and f"x-ratelimit-{name}" not in headers:
            headers[f"x-ratelimit-{name}"] = headers[f"x-rate-limit-{name}"]
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
    """Client-side limiter shared by threads: a sliding window, pacing, and server-driven slow-downs.

    - Never more than `limit` requests in any `period` seconds. A request stays in the window until
      `period` plus the slowest response seen so far has passed since it was sent, so the server
      (which counts it on arrival) never sees the window overfull.
    - Pacing (`burst` set): after the first `burst` calls, calls go out at the allowed rate
      (`limit / period`) instead of in one rush that would empty the budget for everyone else
      sharing the token and then stall for a whole window. A long run finishes at the rate-limit
      bound (calls / allowed rate); a short one is not slowed. `burst=None` paces nothing.
    - `observe()` reads the server's budget. What the server counts beyond this process's own
      calls is someone else's share: the window and the pace shrink to what is left, and a low
      budget is spread over its reset time. A budget that is gone holds everyone until the reset.
    - `pause_until()` (after a 429) holds every thread for exactly the time the server asked.

    Every wait of `notice_seconds` or more is announced once, with its reason, through `notify`
    (default: INFO on the `vgmigrate.ratelimit` logger, which the CLI prints on stderr).

    `limit=None` drops the client-side window (for emulators without a limit, and benchmarks) but
    still obeys the server's headers and 429 pauses.
    """

    LOW_FRACTION = 0.1  # "low" = at most 10% of the quota left
    DEFAULT_BURST = 120  # 10% of Cloudflare's 1200 / 5 min, sent at once before pacing starts
    SLACK_CAP_FRACTION = 0.1  # the window's safety margin never exceeds 10% of the period

    def __init__(self, limit=1200, period=300.0, clock=time.monotonic, sleep=time.sleep, *, burst=None,
                 notify=None, notice_seconds=1.0):
        if (limit is not None and limit < 1) or period <= 0 or (burst is not None and burst < 1):
            raise ValueError("limit must be None or >= 1, burst None or >= 1, and period > 0")
        self.limit = limit
        self.period = float(period)
        self.burst = burst
        self.notify = notify or (lambda message: ratelimit_log.info("%s", message))
        self.notice_seconds = notice_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = collections.deque()
        self._hold_until = float("-inf")
        self._hold_reason = ""
        self._spacing = 0.0
        self._spacing_until = float("-inf")
        self._next_slot = float("-inf")
        self._tokens = float(burst or 0)
        self._refilled = None
        self._slack = 0.0
        self._in_flight = 0
        self.others = 0  # requests in the server's window that are not this process's
        self._others_announced = 0
        self._announced_until = float("-inf")
        self.waits = []  # (seconds, reason) of every announced wait, for reports and benchmarks

    @property
    def effective_limit(self):
        """This process's share of the window: the limit less what others use of it."""
        if self.limit is None:
            return None
        return max(1, self.limit - self.others)

    def acquire(self):
        while True:
            with self._lock:
                now = self._clock()
                wait, reason = self._wait_needed(now)
                if wait <= 0:
                    if self.limit is not None:
                        self._sent.append(now)
                    if self.burst is not None and self.limit is not None:
                        self._tokens -= 1
                    if now < self._spacing_until:
                        self._next_slot = now + self._spacing
                    self._in_flight += 1
                    return
                announce = wait >= self.notice_seconds and now + wait > self._announced_until
                if announce:
                    self._announced_until = now + wait
                    self.waits.append((wait, reason))
            if announce:
                self.notify(f"waiting {_duration(wait)} {reason}")
            # Outside the lock, so other threads can observe and pause. Never a wait too short to
            # move a float clock on: that would spin.
            self._sleep(max(wait, 1e-6))

    def sent_recently(self, wall=None):
        """Wall-clock times of this process's calls still in the window: a later command (another
        process) counts them as its own, not as other clients'. `wall`: time.time() now."""
        with self._lock:
            now = self._clock()
            offset = (time.time() if wall is None else wall) - now
            return [t + offset for t in self._sent if t > now - self.period - self._slack]

    def count_earlier(self, wall_times, wall=None):
        """Calls an earlier vgmigrate command sent with this token (its `sent_recently()`): the
        server still counts them, so they are this tool's own, in its window and never someone
        else's share. Call before the first request."""
        with self._lock:
            if self.limit is None:
                return
            now = self._clock()
            offset = (time.time() if wall is None else wall) - now
            earlier = sorted(t - offset for t in wall_times if now - self.period < t - offset <= now)
            self._sent = collections.deque(earlier + list(self._sent))

    def seconds_for(self, calls):
        """How long `calls` more calls take at the rate limit, given what this limiter has left of
        its burst and any pause it holds (None without a limit): the estimate of time left that
        progress lines give, and `rehearse` for the real apply."""
        with self._lock:
            if self.limit is None:
                return None
            now = self._clock()
            limit, interval = self.effective_limit, self.period / self.effective_limit
            if self.burst is None:  # unpaced: what is left of the window goes at once
                at_once = max(0, limit - len(self._sent))
            else:  # paced: what is left of the burst, refilled since it was last counted
                since = 0.0 if self._refilled is None else (now - self._refilled) / interval
                at_once = max(0.0, min(float(min(self.burst, limit)), self._tokens + since))
            return max(0.0, self._hold_until - now) + max(0.0, calls - at_once) * interval

    def done(self, elapsed):
        """A request sent after `acquire()` got its answer (or failed) after `elapsed` seconds."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._slack = max(self._slack, min(elapsed, self.period * self.SLACK_CAP_FRACTION))

    def _wait_needed(self, now):
        """(seconds to wait, why) before the next request may go."""
        limit = self.effective_limit
        while self._sent and self._sent[0] <= now - self.period - self._slack:
            self._sent.popleft()
        waits = [(self._hold_until - now, self._hold_reason)]
        if now < self._spacing_until:
            waits.append((self._next_slot - now, f"to spread the rest of the API rate limit budget {self._policy()}"))
        if limit is not None:
            if len(self._sent) >= limit:
                waits.append((self._sent[0] + self.period + self._slack - now, f"for the API rate limit {self._policy()}"))
            if self.burst is not None:
                interval = self.period / limit
                if self._refilled is not None:
                    self._tokens = min(float(min(self.burst, limit)), self._tokens + (now - self._refilled) / interval)
                self._refilled = now
                if self._tokens < 1:
                    waits.append(((1 - self._tokens) * interval, f"to pace calls at the API rate limit {self._policy()}"))
        return max(waits, key=lambda w: w[0])

    def _policy(self):
        quota = f"{self.limit} requests / {_duration(self.period)}" if self.limit else "the server's budget"
        if self.others:
            quota += f", about {self.others} of them used by other clients of this token"
        return f"({quota})"

    def observe(self, headers):
        budget = parse_budget(headers)
        if budget is None:
            return
        remaining, reset, quota = budget
        quota = quota or self.limit
        low = max(1.0, (quota or 1200) * self.LOW_FRACTION)
        with self._lock:
            now = self._clock()
            others = 0
            if quota:
                # What the server counts beyond our own window (ours may include calls it has not
                # counted yet: those make this an underestimate, never a false alarm).
                while self._sent and self._sent[0] <= now - self.period - self._slack:
                    self._sent.popleft()
                own = len(self._sent)
                others = quota - remaining - own
                if others <= max(2, self._in_flight, quota // 100):
                    others = 0
            if self.limit is not None:
                # While we compete with them, keep 5% of the limit spare for their growth until
                # the next answer tells us more: both pacing at exactly the limit would collide.
                headroom = max(self._in_flight, self.limit // 20 if own else 0)
                self.others = min(self.limit - 1, others + headroom if others else 0)
                if self.others >= max(self.limit // 10, 1.5 * self._others_announced):
                    self._others_announced = self.others
                    self.notify(f"slowing down: other clients of this API token use about {self.others} of the "
                                f"{self.limit} requests / {_duration(self.period)}")
            if remaining <= 0 and (others or self.limit is None):  # else our own window knows when
                if now + reset > self._hold_until:
                    self._hold_until = now + reset
                    self._hold_reason = f"for the API rate limit: the server says the budget is used up {self._policy()}"
            elif remaining <= low and reset > 0 and (others or self.limit is None):
                self._spacing = reset / remaining
                self._spacing_until = now + reset
            else:
                self._spacing_until = float("-inf")

    def pause_until(self, seconds, reason=None):
        """Hold every thread for `seconds` (after a 429: exactly what the server asked), and say so."""
        with self._lock:
            now = self._clock()
            until = now + max(0.0, seconds)
            if until <= self._hold_until:
                return
            self._hold_until = until
            self._hold_reason = reason or f"for the API rate limit: the server answered 429 and asked to wait {self._policy()}"
            self._announced_until = max(self._announced_until, until)
            self.waits.append((seconds, self._hold_reason))
        self.notify(f"waiting {_duration(seconds)} {self._hold_reason}")


def _duration(seconds):
    """37 s, 5 min, 1.5 s, 0.25 s: how the wait messages say a length of time."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s".replace(".0 s", " s")


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
        base_url_variable="CLOUDFLARE_BASE_URL",
        api_error=CloudflareError,
        retries_error=RetriesExhausted,
        auth_scheme="Bearer",
    ):
        """`base_url_variable` is the setting network errors tell the user to check; `api_error` and
        `retries_error` are the error classes raised for this API's failures (Authentik's client
        passes its own)."""
        self.base_url = base_url.rstrip("/")
        self.base_url_variable = base_url_variable
        self.api_error = api_error
        self.retries_error = retries_error
        self._token = check_token(token)
        self.timeout = _timeouts(timeout)
        self.limiter = limiter if limiter is not None else RateLimiter(sleep=sleep, burst=RateLimiter.DEFAULT_BURST)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random if random is not None else random_module.Random()
        self._stats_lock = threading.Lock()
        self.calls = 0
        self.http_seconds = 0.0
        self.rate_limited = 0  # 429 answers received

        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.auth = _BearerAuth(self._token, auth_scheme)
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
                self.limiter.done(self._count(started))
                delay, wait, why = self._after_failure(method, path, exc, attempt)
            else:
                elapsed = self._count(started, response.status_code)
                self.limiter.observe(response.headers)
                self.limiter.done(elapsed)
                verdict = self._after_response(method, path, response, attempt)
                if verdict is None:
                    return response
                delay, wait, why = verdict
            attempt += 1
            level = logging.WARNING if wait >= LONG_WAIT_SECONDS else logging.DEBUG
            log.log(level, "%s %s: %s; retry %d/%d in %.1fs", method, path, why, attempt, self.max_retries, wait)
            if delay > 0:
                self._sleep(delay)

    def _count(self, started, response_status=None):
        elapsed = time.monotonic() - started
        with self._stats_lock:
            self.calls += 1
            self.http_seconds += elapsed
            if response_status == 429:
                self.rate_limited += 1
        return elapsed

    def backoff(self, attempt):
        """Capped exponential backoff with full jitter."""
        return self._random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _after_response(self, method, path, response, attempt):
        """(seconds to sleep here, seconds until the retry, reason) to retry; None to return the response."""
        status = response.status_code
        if status == 429:
            self._give_up_if_exhausted(method, path, response, attempt)
            wait = parse_retry_after(response.headers)
            if wait is None:  # no Retry-After (Okta): the budget's reset says when calls count again
                budget = parse_budget(response.headers)
                wait = budget[1] if budget and budget[0] <= 0 and budget[1] > 0 else None
            if wait is None:
                wait = self.backoff(attempt)
            # Hold every thread; this thread waits it out in its next acquire().
            self.limiter.pause_until(wait)
            return 0.0, wait, "HTTP 429 (all requests paused)"
        if status >= 500 and status not in _PERMANENT_5XX:
            if method not in IDEMPOTENT_METHODS:
                # The server may have applied it before failing: never resend a write that is not idempotent.
                raise OutcomeUnknown(method, path, self.api_error.from_response(response, method, path, redact=self.redact))
            self._give_up_if_exhausted(method, path, response, attempt)
            delay = self.backoff(attempt)
            return delay, delay, f"HTTP {status}"
        return None

    def _give_up_if_exhausted(self, method, path, response, attempt):
        if attempt >= self.max_retries:
            raise self._error(method, path, response, attempt + 1)

    def _error(self, method, path, response, attempts):
        return self.retries_error.from_response(response, method, path, redact=self.redact, attempts=attempts)

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
            advice = f"check {self.base_url_variable}, then run again"
        else:
            advice = f"check the network, proxy and {self.base_url_variable}, then run the command again"
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


def json_answer(response, method, path, error_class, redact, address_hint):
    """The JSON body of a 2xx answer (None for 204 or an empty body), else `error_class` made from
    the answer. A 2xx that is not JSON names the setting to check (`address_hint`): a login page or
    a proxy answered, not the API."""
    if not 200 <= response.status_code < 300:
        raise error_class.from_response(response, method, path, redact=redact)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise error_class.from_response(response, method, path, redact=redact,
                                        errors=[f"the answer was not JSON: {address_hint}"]) from None


def same_url(a, b):
    """Equal URLs, ignoring trailing slashes, the host's case and a default port."""

    def key(url):
        parts = urlsplit(str(url or "").strip())
        host = (parts.hostname or "").lower()
        port = parts.port
        if port and not ((parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)):
            host = f"{host}:{port}"
        return parts.scheme.lower(), host, parts.path.rstrip("/"), parts.query

    return bool(a) and key(a) == key(b)
