"""HttpClient and RateLimiter against a tiny scripted loopback server, with a fake clock for waits."""

import collections
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from migrate.errors import CloudflareError, OutcomeUnknown, TokenError, VgmigrateError, error_details
from migrate.http import (
    HttpClient,
    NetworkError,
    RateLimiter,
    RetriesExhausted,
    check_token,
    parse_budget,
    parse_retry_after,
)

TOKEN = "Tk9vZ21pZ3JhdGUtdGVzdC10b2tlbi0xMjM0NTY3"  # 40 chars, like a real Cloudflare token
OK_BODY = {"success": True, "errors": [], "messages": [], "result": {"ok": True}}





class MaxJitter:
    """`random` stand-in: full jitter always picks the top of the range, so backoff is predictable."""

    def uniform(self, low, high):
        return high


class ScriptedServer:
    """Loopback HTTP/1.1 server answering from a script of actions, recording every request.

    Actions: ("respond", status, headers, body) | ("drop",) close without answering |
    ("hang", seconds) stay silent that long, then close. An empty script answers 200 OK_BODY.
    """

    def __init__(self, port=0):
        self.script = collections.deque()
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body in two writes cost ~40 ms per call

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                action = outer.script.popleft() if outer.script else ("respond", 200, {}, OK_BODY)
                if action[0] == "drop":
                    self.close_connection = True
                    return
                if action[0] == "hang":
                    time.sleep(action[1])
                    self.close_connection = True
                    return
                _, status, headers, payload = action
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/client/v4"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def push(self, *actions):
        self.script.extend(actions)

    def methods(self):
        return [r[0] for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()


def make_client(url, clock, **kwargs):
    kwargs.setdefault("limiter", RateLimiter(clock=clock, sleep=clock.sleep))
    kwargs.setdefault("timeout", (1.0, 2.0))
    return HttpClient(url, TOKEN, sleep=clock.sleep, random=MaxJitter(), **kwargs)


def error_envelope(code, message):
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


# -- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Ratelimit": '"default";r=50;t=30'}, (50, 30.0, None)),
        ({"Ratelimit": '"default";r=3;t=12', "Ratelimit-Policy": '"burst";q=100;w=60'}, (3, 12.0, 100)),
        ({"ratelimit": '"a";r=9;t=5, "b";r=2;t=40'}, (2, 40.0, None)),  # the tightest member governs
        ({"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "20", "X-RateLimit-Limit": "1200"}, (7, 20.0, 1200)),
        ({"x-ratelimit-remaining": "7", "x-ratelimit-reset": str(1_000_000_090)}, (7, 90.0, None)),  # epoch
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "Sun, 09 Sep 2001 01:47:10 GMT"}, (0, 30.0, None)),
        ({"x-ratelimit-remaining": "7"}, None),  # no reset: nothing to plan with
        ({"Ratelimit": "garbage"}, None),
        ({}, None),
    ],
)
def test_parse_budget(headers, expected):
    assert parse_budget(headers, now_wall=1_000_000_000) == expected


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "Sun, 09 Sep 2001 01:46:52 GMT"}, 12.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers, now_wall=1_000_000_000) == expected


def test_error_details_reads_v4_scim_and_text():
    class Resp:
        status_code = 409

        def __init__(self, body):
            self.text = body if isinstance(body, str) else json.dumps(body)

        def json(self):
            return json.loads(self.text)

    assert error_details(Resp(error_envelope(1003, "bad"))) == ([{"code": 1003, "message": "bad"}], [])
    scim = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "detail": "dup",
            "scimType": "uniqueness"}
    assert error_details(Resp(scim)) == ([{"code": "uniqueness", "message": "dup"}], [])
    assert error_details(Resp({"status": "404", "detail": "gone"})) == ([{"code": 404, "message": "gone"}], [])
    assert error_details(Resp("<html> Bad\n gateway </html>")) == (["<html> Bad gateway </html>"], [])


@pytest.mark.parametrize("bad", ["", "   ", None, "abc def", "tok\nen", "tök"])
def test_bad_tokens_are_refused_without_echoing_them(bad):
    with pytest.raises(TokenError) as err:
        check_token(bad)
    if bad and bad.strip():
        assert bad.strip() not in str(err.value)


def test_token_is_stripped():
    assert check_token(f"  {TOKEN}\n") == TOKEN


# -- RateLimiter ---------------------------------------------------------------------------------


def test_limiter_sliding_window_blocks_until_the_oldest_request_ages_out(clock):
    limiter = RateLimiter(limit=3, period=10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    clock.now = 4.0
    limiter.acquire()  # 4th request waits until t=10, when the first three leave the window
    assert clock.now == pytest.approx(10.0)
    limiter.acquire()
    limiter.acquire()
    assert clock.now == pytest.approx(10.0)  # the window holds three requests, all sent at t=10
    limiter.acquire()
    assert clock.now == pytest.approx(20.0)


def test_limiter_spreads_a_low_server_budget_over_the_reset_time(clock):
    limiter = RateLimiter(limit=1200, period=300.0, clock=clock, sleep=clock.sleep)
    limiter.observe({"Ratelimit": '"default";r=4;t=20'})  # 4 left for 20 s: one every 5 s
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == [0.0, 5.0, 10.0]


def test_limiter_ignores_a_healthy_budget_and_clears_spacing(clock):
    limiter = RateLimiter(limit=1200, period=300.0, clock=clock, sleep=clock.sleep)
    limiter.observe({"x-ratelimit-remaining": "5", "x-ratelimit-reset": "50"})
    limiter.observe({"x-ratelimit-remaining": "900", "x-ratelimit-reset": "50"})
    for _ in range(5):
        limiter.acquire()
    assert clock.sleeps == []


def test_limiter_holds_everyone_when_the_budget_is_gone(clock):
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe({"Ratelimit": '"default";r=0;t=42'})
    limiter.acquire()
    assert clock.now == pytest.approx(42.0)


def test_limiter_without_a_window_still_obeys_the_server(clock):
    limiter = RateLimiter(limit=None, clock=clock, sleep=clock.sleep)
    for _ in range(5000):
        limiter.acquire()
    assert clock.sleeps == [] and len(limiter._sent) == 0  # nothing kept, nothing waited
    limiter.observe({"Ratelimit": '"default";r=0;t=9'})
    limiter.acquire()
    assert clock.now == pytest.approx(9.0)


def test_pause_until_holds_every_thread():
    limiter = RateLimiter()
    limiter.pause_until(0.15)
    started = time.monotonic()
    released = []

    def worker():
        limiter.acquire()
        released.append(time.monotonic() - started)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(released) == 4
    assert min(released) >= 0.14


def test_limiter_is_thread_safe_under_contention():
    limiter = RateLimiter(limit=10_000, period=300.0)
    threads = [threading.Thread(target=lambda: [limiter.acquire() for _ in range(200)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(limiter._sent) == 1600


# -- HttpClient: the happy path ------------------------------------------------------------------


def test_sends_bearer_auth_user_agent_params_and_json(server, clock):
    client = make_client(server.url, clock)
    response = client.request("POST", "/accounts/x/things", params={"a": 1, "skip": None}, json=[{"id": "m"}])
    assert response.status_code == 200
    method, path, headers, body = server.requests[0]
    assert (method, path) == ("POST", "/client/v4/accounts/x/things?a=1")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"].startswith("vgmigrate/")
    assert json.loads(body) == [{"id": "m"}]
    assert client.calls == 1 and client.http_seconds > 0


def test_four_xx_is_returned_to_the_caller_not_retried(server, clock):
    server.push(("respond", 404, {}, error_envelope(7003, "No route")))
    client = make_client(server.url, clock)
    assert client.request("GET", "/nope").status_code == 404
    assert len(server.requests) == 1 and clock.sleeps == []


def test_token_never_leaks_into_repr_or_session_headers(server, clock):
    client = make_client(server.url, clock)
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client.session.headers)
    assert TOKEN not in repr(client.session.auth)


def test_a_netrc_entry_cannot_replace_the_bearer_token(server, clock, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    make_client(server.url, clock).request("GET", "/x")
    assert server.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"


# -- HttpClient: 429 -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_429_waits_retry_after_then_succeeds_for_any_method(server, clock, method):
    server.push(("respond", 429, {"Retry-After": "7"}, error_envelope(971, "Please wait")))
    client = make_client(server.url, clock)
    assert client.request(method, "/x", json={} if method != "GET" else None).status_code == 200
    assert server.methods() == [method, method]  # 429 = not processed, so even a POST is resent
    assert clock.sleeps == [7.0]
    assert client.calls == 2


def test_429_without_retry_after_falls_back_to_backoff(server, clock):
    server.push(("respond", 429, {}, error_envelope(971, "wait")), ("respond", 429, {}, error_envelope(971, "w")))
    make_client(server.url, clock, backoff_base=0.5).request("GET", "/x")
    assert clock.sleeps == [0.5, 1.0]


def test_429_pauses_the_shared_limiter_so_every_thread_waits(server, clock):
    class SpyLimiter(RateLimiter):
        pauses = []

        def pause_until(self, seconds):
            self.pauses.append(seconds)
            super().pause_until(seconds)

    limiter = SpyLimiter(clock=clock, sleep=clock.sleep)
    server.push(("respond", 429, {"Retry-After": "30"}, error_envelope(971, "wait")))
    make_client(server.url, clock, limiter=limiter).request("GET", "/x")
    assert SpyLimiter.pauses == [30.0]
    # Another client on the same limiter, asking right now, is not held any more (the pause is over)...
    make_client(server.url, clock, limiter=limiter).request("GET", "/y")
    assert clock.now == pytest.approx(30.0)


def test_429_forever_gives_up_with_a_one_line_next_step(server, clock):
    server.push(*[("respond", 429, {"Retry-After": "1", "cf-ray": "abc-LHR"}, error_envelope(971, "wait"))] * 3)
    with pytest.raises(RetriesExhausted) as err:
        make_client(server.url, clock, max_retries=2).request("POST", "/x", json={})
    assert isinstance(err.value, CloudflareError) and err.value.status == 429
    text = str(err.value)
    assert "\n" not in text and "wait 5 minutes" in text and "cf-ray abc-LHR" in text and "3 attempts" in text
    assert len(server.requests) == 3


# -- HttpClient: 5xx, drops and timeouts ---------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_5xx_is_retried_with_capped_backoff_for_idempotent_methods(server, clock, method):
    server.push(*[("respond", 503, {}, error_envelope(10000, "try later"))] * 4)
    client = make_client(server.url, clock, backoff_base=0.5, backoff_cap=2.0)
    assert client.request(method, "/x").status_code == 200
    assert clock.sleeps == [0.5, 1.0, 2.0, 2.0]  # doubling, then capped
    assert server.methods() == [method] * 5


def test_backoff_uses_full_jitter(server, clock):
    class Recorder:
        calls = []

        def uniform(self, low, high):
            self.calls.append((low, high))
            return low

    client = HttpClient(server.url, TOKEN, sleep=clock.sleep, random=Recorder(), backoff_base=1.0,
                        limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    server.push(("respond", 502, {}, b"bad gateway"), ("respond", 502, {}, b"bad gateway"))
    client.request("GET", "/x")
    assert Recorder.calls == [(0, 1.0), (0, 2.0)]


def test_5xx_on_post_is_outcome_unknown_and_never_resent(server, clock):
    server.push(("respond", 500, {"cf-ray": "r1"}, error_envelope(10000, "internal")))
    with pytest.raises(OutcomeUnknown) as err:
        make_client(server.url, clock).request("POST", "/x", json={"name": "g"})
    assert server.methods() == ["POST"]
    assert isinstance(err.value.cause, CloudflareError) and err.value.cause.status == 500


def test_5xx_exhausted_on_get_raises_cloudflare_error(server, clock):
    server.push(*[("respond", 503, {"cf-ray": "r2"}, error_envelope(10000, "down"))] * 3)
    with pytest.raises(CloudflareError) as err:
        make_client(server.url, clock, max_retries=2).request("GET", "/x")
    assert err.value.status == 503 and err.value.codes == [10000]
    assert "run the command again" in str(err.value)
    assert len(server.requests) == 3


def test_501_is_not_retried(server, clock):
    server.push(("respond", 501, {}, error_envelope(10000, "nope")))
    assert make_client(server.url, clock).request("GET", "/x").status_code == 501
    assert len(server.requests) == 1


def test_dropped_connection_on_get_is_retried(server, clock):
    server.push(("drop",))
    assert make_client(server.url, clock).request("GET", "/x").status_code == 200
    assert server.methods() == ["GET", "GET"]


def test_dropped_connection_on_post_is_outcome_unknown(server, clock):
    server.push(("drop",))
    with pytest.raises(OutcomeUnknown):
        make_client(server.url, clock).request("POST", "/x", json={})
    assert server.methods() == ["POST"]


def test_read_timeout_retries_put_but_not_post(server, clock):
    client = make_client(server.url, clock, timeout=(1.0, 0.1))
    server.push(("hang", 0.3))
    assert client.request("PUT", "/x", json=[]).status_code == 200
    assert server.methods() == ["PUT", "PUT"]
    server.push(("hang", 0.3))
    with pytest.raises(OutcomeUnknown) as err:
        client.request("POST", "/x", json={})
    assert server.methods()[-1] == "POST" and server.methods().count("POST") == 1
    assert "may or may not" in str(err.value)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_safe_to_retry_even_for_post(clock):
    """Nothing was sent, so a POST may be retried; the server comes up during the first backoff."""
    port = _free_port()
    started = []

    def sleep_then_start(seconds):
        clock.sleep(seconds)
        if not started:
            started.append(ScriptedServer(port))

    client = HttpClient(f"http://127.0.0.1:{port}/client/v4", TOKEN, sleep=sleep_then_start,
                        random=MaxJitter(), limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    try:
        assert client.request("POST", "/x", json={"a": 1}).status_code == 200
        assert started[0].methods() == ["POST"]
        assert client.calls == 2
    finally:
        for srv in started:
            srv.close()


def test_unreachable_host_gives_up_with_a_network_error(clock):
    port = _free_port()
    client = HttpClient(f"http://127.0.0.1:{port}/client/v4", TOKEN, sleep=clock.sleep, random=MaxJitter(),
                        max_retries=2, limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    with pytest.raises(NetworkError) as err:
        client.request("GET", "/accounts/x")
    text = str(err.value)
    assert isinstance(err.value, VgmigrateError)
    assert "3 attempts" in text and "CLOUDFLARE_BASE_URL" in text and "\n" not in text
    assert TOKEN not in text
    assert client.calls == 3


def test_invalid_base_url_is_a_one_line_error(clock):
    client = HttpClient("notaurl", TOKEN, sleep=clock.sleep, limiter=RateLimiter(clock=clock, sleep=clock.sleep))
    with pytest.raises(NetworkError) as err:
        client.request("GET", "/x")
    assert "CLOUDFLARE_BASE_URL" in str(err.value)


# -- secrets and logs ----------------------------------------------------------------------------


def test_token_is_absent_from_every_error_and_debug_log(server, clock, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(server.url, clock, max_retries=1, timeout=(1.0, 0.1))
    # The server echoes the token back in an error body: it must still be scrubbed.
    echo = f"rejected Bearer {TOKEN}".encode()
    server.push(("respond", 503, {}, echo), ("respond", 503, {}, echo))
    failures = []
    with pytest.raises(CloudflareError) as err:
        client.request("GET", "/x")
    failures.append(err.value)
    server.push(("drop",))
    with pytest.raises(OutcomeUnknown) as err:
        client.request("POST", "/x", json={})
    failures.append(err.value)
    server.push(("hang", 0.3), ("hang", 0.3))
    with pytest.raises(NetworkError) as err:
        client.request("GET", "/x")
    failures.append(err.value)
    for failure in failures:
        assert TOKEN not in str(failure) and TOKEN not in repr(failure)
    assert any("retry" in r.getMessage() for r in caplog.records if r.name == "vgmigrate.http")
    assert TOKEN not in caplog.text


def test_retries_are_logged_at_debug(server, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="vgmigrate.http")
    server.push(("respond", 503, {}, error_envelope(1, "x")))
    make_client(server.url, clock).request("GET", "/accounts/a")
    records = [r for r in caplog.records if r.name == "vgmigrate.http"]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert "GET /accounts/a: HTTP 503; retry 1/5" in records[0].getMessage()


def test_a_long_429_pause_is_logged_at_warning_with_its_length(server, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="vgmigrate.http")
    server.push(("respond", 429, {"Retry-After": "120"}, error_envelope(971, "wait")))
    make_client(server.url, clock).request("GET", "/x")
    [record] = [r for r in caplog.records if r.name == "vgmigrate.http"]
    assert record.levelno == logging.WARNING and "in 120.0s" in record.getMessage()


# -- concurrency ---------------------------------------------------------------------------------


def test_parallel_requests_share_the_pool_and_count_exactly(server, caplog):
    caplog.set_level(logging.WARNING)
    client = HttpClient(server.url, TOKEN)
    errors = []

    def worker():
        try:
            for _ in range(10):
                client.request("GET", "/x")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert client.calls == 80 == len(server.requests)
    assert "Connection pool is full" not in caplog.text  # pool_maxsize >= 16
