"""`IdpServed`: what the IdP emulators (Authentik, Okta, Entra ID) share as HTTP servers: the
listening set-up, the record of calls, fault injection, how an answer is written or a connection
dropped, and waiting for the worker. Each emulator adds its routes, its headers and its seed."""

import json
import socket
import sys
import threading
from email.utils import formatdate
from urllib.parse import urlsplit

from .faults import Faults
from .routing import Request
from .server import Served, _Handler as _CloudflareHandler, _phrase, _read_body


class IdpServed(Served):
    """Subclasses set `name` (as users call the IdP), `server_header` and, if not plain JSON,
    `content_type`; call `_serve_on(...)` from `__init__`; answer a request in `answer(request)`,
    and a fault in `server_error(status)` and `throttled()`; and may add `extra_headers()` and
    `fault_path(path)` (the path fault patterns are matched against besides the full one)."""

    name = "IdP"
    server_header = "sandbox"
    content_type = "application/json"
    record_bodies = False  # keep (method, path, status, body) of every answer in `bodies` (contract tests)

    def _serve_on(self, host, port, latency_ms, timeout_seconds, verbose, random_seed):
        self.faults = Faults(random_seed=random_seed)
        self.latency = latency_ms / 1000.0
        self.timeout_seconds = timeout_seconds
        self.verbose = verbose
        self._host, self._port = host, port
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._calls = []
        self.bodies = []
        self._calls_lock = threading.Lock()
        self._connections = set()
        self._connections_lock = threading.Lock()

    def handler_class(self):
        return type("_Handler", (_CloudflareHandler,), {"server_version": self.server_header})

    @property
    def port(self):
        return self._server.server_address[1] if self._server else self._port

    # ---- test helpers -----------------------------------------------------------------------------

    @property
    def calls(self):
        """(method, path without query, status) per request; status None when dropped."""
        with self._calls_lock:
            return list(self._calls)

    def reset_calls(self):
        with self._calls_lock:
            self._calls.clear()

    def inject(self, method, path_regex, kind, times=1):
        """Misbehave on the next `times` requests matching: "5xx" | "429" | "lose" | "timeout"."""
        self.faults.inject(method, path_regex, kind, times)

    def settle(self, timeout=30.0):
        """Wait until the worker has nothing queued or running (a person who waits; never the tool)."""
        if not self.worker.drain(timeout):
            raise TimeoutError(f"the {self.name} sandbox's worker still had {self.worker.pending} message(s) after {timeout:g} s")

    # ---- answers ----------------------------------------------------------------------------------

    def handle(self, handler):
        """One request: an injected fault (5xx, 429, a timeout, or an answer lost after the work
        was done), else this IdP's answer."""
        split = urlsplit(handler.path)
        path, method = split.path, handler.command
        body = _read_body(handler)
        fault = self.faults.pick(method, path, self.fault_path(path))
        if fault == "5xx":
            return self._respond(handler, method, path, self.server_error(self.faults.server_error_status()))
        if fault == "429":
            return self._respond(handler, method, path, self.throttled())
        if fault == "timeout":
            self._stopping.wait(self.timeout_seconds)
            return self._drop(handler, method, path)
        response = self.answer(Request(method, path, Request.parse_query(split.query), body, handler.headers))
        if fault == "lose":
            return self._drop(handler, method, path)
        return self._respond(handler, method, path, response)

    def fault_path(self, path):
        return path

    def extra_headers(self):
        """Header lines this IdP sends on every answer (a request id)."""
        return []

    def _record(self, method, path, status, body=None):
        with self._calls_lock:
            self._calls.append((method, path, status))
            if self.record_bodies and status is not None:
                self.bodies.append((method, path, status, body))

    def _respond(self, handler, method, path, response):
        self._record(method, path, response.status, response.body)
        payload = b"" if response.body is None else json.dumps(response.body, separators=(",", ":")).encode()
        self._answer_after_latency(handler)
        lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}", f"Date: {formatdate(usegmt=True)}",
                 f"Server: {self.server_header}", *self.extra_headers(), f"Content-Length: {len(payload)}"]
        if response.body is not None:
            lines.append(f"Content-Type: {self.content_type}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        lines.append("Connection: close" if handler.close_connection else "Connection: keep-alive")
        handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        if self.verbose:
            sys.stderr.write(f"{self.name} {method} {path} -> {response.status}\n")

    def _drop(self, handler, method, path):
        self._record(method, path, None)
        self._answer_after_latency(handler)
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def scim_view(cloudflare):
    """What an IdP emulator is seeded from, read from a started Cloudflare sandbox: (its SCIM users,
    each with its groups; {SCIM group id: name} of the system groups; (id, name, member user ids)
    of each SCIM-managed User Group; the account id)."""
    with cloudflare.state.lock:
        cf = cloudflare.state
        scim_users = [dict(u, groups=dict(u["groups"])) for u in cf.scim_users.values()]
        system = {gid: g["displayName"] for gid, g in cf.scim_groups.items()}
        custom = [(g["id"], g["name"], [cf.members[m]["user"]["id"] for m in g["members"] if m in cf.members])
                  for g in cf.user_groups.values() if g["scim_managed"]]
        return scim_users, system, custom, cf.account["id"]
