"""`Sandbox`: the emulator served over real HTTP/1.1 keep-alive on loopback.

Each response goes out in one write with TCP_NODELAY set: a standard-library server that writes
headers and body separately stalls keep-alive clients ~40 ms per call (Nagle vs delayed ACK).
"""

import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import api, render, scim
from .errors import (
    AUTHENTICATION, INTERNAL, INVALID_AUTH_FORMAT, INVALID_HEADERS, MISSING_AUTH, NO_ROUTE, NO_ROUTE_FOR_URI, RATE_LIMITED,
    ApiError, ScimError,
)
from .faults import Faults, RateLimiter
from .routing import JSON, Request, Response, failure, failures
from .state import State

PREFIX = "/client/v4"
ROUTERS = (api.router, scim.router)
# Path parameters that are Cloudflare object identifiers (32 hex): anything else does not route.
# SCIM user/group ids and the SCIM discovery names are not checked (system group ids are not hex).
HEX_ID = re.compile(r"^[0-9a-fA-F]{32}$")
ID_PARAMS = ("account_id", "group_id", "rg_id", "pg_id", "member_id", "role_id")
# What an API token may contain (Cloudflare tokens are URL-safe base64-like strings).
TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass
class Context:
    """What a handler knows about the caller."""

    state: State
    account_id: str
    base_url: str
    token_valid: bool
    token_kind: str
    token_id: str
    actor: dict
    ray: str = ""  # this response's cf-ray header
    audited: list = None  # v2 audit entries written by this request (their status is set after)


class Served:
    """Serving an emulator on loopback: start(), stop() (which also closes keep-alive connections,
    so no client reaches a stopped sandbox), or a `with` block. The emulator sets `_host`, `_port`,
    `_server = None`, `_stopping`, `_connections` and `_connections_lock`, and has `handle(handler)`."""

    thread_name = "sandbox"

    def handler_class(self):
        return _Handler

    def start(self):
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self.handler_class())
        self._server.sandbox = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True, name=self.thread_name)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive clients must not reach a stopped sandbox
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = None

    def _answer_after_latency(self, handler):
        """Hold the answer until `latency` has passed since the request arrived. The emulator's own
        work is inside that time, as a real server's is inside the response time its clients see:
        with the latency added after it, an emulator sharing the client's CPUs answered later the
        busier it was, and a benchmark measured the emulator as much as the client."""
        left = handler.arrived + self.latency - time.monotonic()
        if left > 0:
            self._stopping.wait(left)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Sandbox(Served):
    """A stateful Cloudflare API emulator. Use as a context manager or start()/stop()."""

    thread_name = "cf-sandbox"

    def __init__(
        self,
        seed=None,
        token=None,
        token_kind="account",
        rate_limit=(1200, 300),
        latency_ms=0,
        fail_5xx=0.0,
        lose_responses=0.0,
        timeouts=0.0,
        random_seed=0,
        timeout_seconds=2.0,
        host="127.0.0.1",
        port=0,
        verbose=False,
        before_end_of_life=False,
    ):
        if seed is None:
            from .seeds import demo_seed  # only without a seed (start-up time of a seeded sandbox)

            seed = demo_seed()
        if token_kind not in ("account", "user"):
            raise ValueError("token_kind must be 'account' or 'user'")
        self.state = State(seed, random_seed=random_seed)
        self.state.before_end_of_life = before_end_of_life  # see State.scim_create_group
        self.account_id = self.state.account["id"]
        self.token = token or secrets.token_urlsafe(30)
        self.token_kind = token_kind
        self.token_id = "%032x" % int.from_bytes(os.urandom(16), "big")
        self.rate_limiter = RateLimiter(*rate_limit) if rate_limit else None
        self.latency = latency_ms / 1000.0
        self.faults = Faults(fail_5xx, lose_responses, timeouts, random_seed)
        self.timeout_seconds = timeout_seconds
        self.verbose = verbose
        self._host, self._port = host, port
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._calls = []
        self._calls_lock = threading.Lock()
        # record_scim: keep every SCIM request with its body (scim_requests), to compare what
        # IdPs send; off by default, as a bench sends thousands.
        self.record_scim = False
        self._scim_requests = []
        self._connections = set()
        self._connections_lock = threading.Lock()
        self._actor = self._token_actor()
        # on_write(state, method, path): called under the state lock after each write that took
        # effect, before its response is sent (see watch.AccessWatch).
        self.on_write = None

    # ---- lifecycle ------------------------------------------------------------------------------


    @property
    def port(self):
        return self._server.server_address[1] if self._server else None

    @property
    def base_url(self):
        return f"http://{self._host}:{self.port}{PREFIX}"

    # ---- test helpers -------------------------------------------------------------------------------

    @property
    def calls(self):
        """(method, full path without query, status) per request, e.g.
        ("GET", "/client/v4/accounts/<id>/members", 200); status None when no response was sent."""
        with self._calls_lock:
            return list(self._calls)

    def reset_calls(self):
        with self._calls_lock:
            self._calls.clear()
            self._scim_requests.clear()

    @property
    def scim_requests(self):
        """With `record_scim` on, one dict per SCIM request, oldest first: `at` (monotonic
        seconds), `method`, `path` (after /scim/v2, e.g. "/Groups/<id>"), `query`, `body` (parsed
        JSON or None) and `status` (None when no response was sent)."""
        with self._calls_lock:
            return [dict(r) for r in self._scim_requests]

    def inject(self, method, path_regex, kind, times=1):
        """Misbehave on the next `times` requests matching method ("*" = any) and path regex.

        kind: "5xx" (500/502/503, change not applied), "429", "lose" (change applied, connection
        dropped without a byte), "timeout" (held `timeout_seconds`, then dropped, not applied).
        `path_regex` is searched in the path both with and without the /client/v4 prefix.
        """
        self.faults.inject(method, path_regex, kind, times)

    def _record(self, method, path, status, query="", body=b""):
        with self._calls_lock:
            self._calls.append((method, path, status))
            scim_at = path.find("/scim/v2")
            if self.record_scim and scim_at >= 0:
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                self._scim_requests.append({"at": time.monotonic(), "method": method, "path": path[scim_at + len("/scim/v2"):],
                                            "query": query, "body": parsed, "status": status})

    def _token_actor(self):
        if self.token_kind == "user":
            owner = next(iter(self.state.members.values()), None)
            if owner:
                return {"id": owner["user"]["id"], "email": owner["email"], "ip": "127.0.0.1", "type": "user"}
        # The v1 audit schema knows no "account" actor type; an account-owned token shows as
        # a user-type actor whose id is the token id (no email).
        return {"id": self.token_id, "ip": "127.0.0.1", "type": "user"}

    # ---- request handling ---------------------------------------------------------------------------

    def handle(self, handler):
        split = urlsplit(handler.path)
        full_path = split.path
        method = handler.command
        body = _read_body(handler)
        handler.request_query, handler.request_body = split.query, body  # for record_scim

        token, header_error = _bearer(handler.headers)
        token_valid = token is not None and secrets.compare_digest(token, self.token)
        headers = {"cf-ray": f"{os.urandom(8).hex()}-SBX"}
        if self.rate_limiter:
            allowed, remaining, reset = self.rate_limiter.hit(token if token_valid else "anonymous")
            headers["Ratelimit"] = f'"default";r={remaining};t={reset}'
            headers["Ratelimit-Policy"] = f'"burst";q={self.rate_limiter.limit};w={self.rate_limiter.window:g}'
            if not allowed:
                headers["Retry-After"] = str(reset)
                return self._respond(handler, method, full_path, _rate_limited(headers))

        api_path = full_path[len(PREFIX):] if full_path.startswith(PREFIX + "/") else None
        fault = self.faults.pick(method, full_path, api_path or full_path)
        if fault == "5xx":
            status = self.faults.server_error_status()
            return self._respond(handler, method, full_path, _with(failure(status, INTERNAL, HTTPStatus(status).phrase), headers))
        if fault == "429":
            headers["Retry-After"] = "1"
            return self._respond(handler, method, full_path, _rate_limited(headers))
        if fault == "timeout":
            self._stopping.wait(self.timeout_seconds)
            return self._drop(handler, method, full_path)

        if header_error is not None:
            # Header validation happens at the edge, before routing or authentication.
            return self._respond(handler, method, full_path, _with(header_error, headers))
        request = Request(method, api_path or full_path, Request.parse_query(split.query), body, handler.headers)
        response = _with(self._route(request, api_path, token_valid, headers["cf-ray"]), headers)
        if fault == "lose":
            return self._drop(handler, method, full_path)
        return self._respond(handler, method, full_path, response)

    def _route(self, request, api_path, token_valid, ray=""):
        found = None
        if api_path is not None:
            for router in ROUTERS:
                found = router.match(request.method, api_path)
                if found:
                    break
        if found and any(not HEX_ID.match(v) for k, v in found[1].items() if k in (("account_id",) if found[0].scim else ID_PARAMS)):
            found = None  # a malformed identifier does not route
        if not found:
            path = PREFIX + api_path if api_path is not None else request.path
            return failures(400, [
                {"code": NO_ROUTE, "message": f"Could not route to {path}, perhaps your object identifier is invalid?"},
                {"code": NO_ROUTE_FOR_URI, "message": "No route for that URI"},
            ])
        route, params = found
        if not route.verify:
            # Authentication happens at the edge, before any service: always the v4 envelope.
            if not token_valid or params.get("account_id", self.account_id) != self.account_id:
                return failure(403, AUTHENTICATION, "Authentication error")
        request.context = Context(
            self.state, self.account_id, self.base_url, token_valid, self.token_kind, self.token_id, self._actor, ray, []
        )
        try:
            with self.state.lock:
                response = route.handler(request, **params)
                for entry in request.context.audited:  # v2 entries carry the status actually sent
                    entry["raw"]["status_code"] = response.status
                if self.on_write and request.method != "GET" and 200 <= response.status < 300:
                    self.on_write(self.state, request.method, request.path)
                return response
        except ApiError as err:
            return failure(err.status, err.code, err.message)
        except ScimError as err:
            return Response(err.status, render.scim_error(err.status, err.detail, err.scim_type), "application/scim+json")

    def _respond(self, handler, method, path, response):
        self._record(method, path, response.status, handler.request_query, handler.request_body)
        payload = b"" if response.body is None else _JSON.encode(response.body).encode()
        self._answer_after_latency(handler)
        lines = [
            f"HTTP/1.1 {response.status} {_phrase(response.status)}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: cloudflare",
            f"cf-ray: {response.headers.pop('cf-ray', None) or os.urandom(8).hex() + '-SBX'}",
            f"Content-Length: {len(payload)}",
        ]
        if response.body is not None:
            lines.append(f"Content-Type: {response.content_type}; charset=utf-8" if response.content_type == JSON else f"Content-Type: {response.content_type}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        lines.append("Connection: close" if handler.close_connection else "Connection: keep-alive")
        handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        if self.verbose:
            sys.stderr.write(f"{method} {path} -> {response.status}\n")

    def _drop(self, handler, method, path):
        """Close the connection without sending a single response byte."""
        self._record(method, path, None, handler.request_query, handler.request_body)
        self._answer_after_latency(handler)
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.verbose:
            sys.stderr.write(f"{method} {path} -> (connection dropped)\n")


def _read_body(handler):
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _bearer(headers):
    """(token, None) or (None, the 400 Cloudflare's edge answers for missing or malformed credentials)."""
    value = headers.get("Authorization")
    if value is None:
        if headers.get("X-Auth-Key") or headers.get("X-Auth-Email"):
            return None, None  # the legacy key pair: never valid here, so a plain 403 later
        return None, failure(400, MISSING_AUTH, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not TOKEN_CHARS.match(token):
        return None, failures(400, [{
            "code": INVALID_HEADERS, "message": "Invalid request headers",
            "error_chain": [{"code": INVALID_AUTH_FORMAT, "message": "Invalid format for Authorization header"}],
        }])
    return token, None


def _rate_limited(headers):
    response = failure(429, RATE_LIMITED, "Please wait and consider throttling your request speed")
    response.headers.update(headers)
    return response


def _with(response, headers):
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


def _phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# Response bodies are trees the handlers just built: the cycle check only costs time.
_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox = None

    def handle_error(self, request, client_address):
        # A client killed mid-request (kill -9, a chaos run) resets its connection: not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare"
    timeout = 120  # idle keep-alive connections close after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sandbox = self.server.sandbox
        with sandbox._connections_lock:
            sandbox._connections.add(self.connection)

    def finish(self):
        sandbox = self.server.sandbox
        with sandbox._connections_lock:
            sandbox._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self):
        self.arrived = time.monotonic()  # the latency counts from here (Served._answer_after_latency)
        try:
            self.server.sandbox.handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        if self.server.sandbox.verbose:
            super().log_message(format, *args)
