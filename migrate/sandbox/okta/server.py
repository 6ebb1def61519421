"""`OktaSandbox`: the Okta Management API emulator over real HTTP/1.1 keep-alive on loopback,
seeded from a running Cloudflare `Sandbox` and pushing into its SCIM endpoint from a worker."""

import math
import re
import secrets
import string
import time
from dataclasses import dataclass

from ..authentik.worker import Worker
from ..faults import RateLimiter
from ..idp_served import IdpServed
from ..routing import Response
from .push import Pusher
from .routes import SCOPES, OktaApiError, router
from .seed import seed
from .state import State

ALL_SCOPES = ("okta.groups.read", "okta.groups.manage", "okta.apps.read", "okta.apps.manage", "okta.logs.read", "okta.users.read")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Context:
    state: State
    pusher: Pusher
    full_path: str


class OktaSandbox(IdpServed):
    """A stateful Okta emulator. Use as a context manager or start()/stop(). See the package docstring."""

    thread_name = "okta-sandbox"

    def __init__(self, cloudflare=None, token=None, access_tokens=None, provisioning=True, group_push=True,
                 mapped=True, assigned=True, host="127.0.0.1", port=0, latency_ms=0, random_seed=0,
                 rate_limit=(600, 60.0), timeout_seconds=2.0, verbose=False, push_delay=(0.02, 0.25),
                 retry_backoff=0.4, max_retries=5, scim_token=None, imported=True):
        self.state = State(lambda: self.base_url, random_seed=random_seed)
        # Okta API tokens are 42 characters of letters, digits, - and _; letters and digits here.
        self.token = token or "00" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(40))
        # OAuth 2.0 access tokens, each with its granted scopes (a service app's token).
        self.access_tokens = {t: frozenset(s) for t, s in (access_tokens or {}).items()}
        self.worker = Worker(delay=push_delay, backoff=retry_backoff, max_retries=max_retries, random_seed=random_seed,
                             on_give_up=lambda message, err: self.pusher.gave_up(message, err))
        self.pusher = Pusher(self.state, self.worker)
        self._serve_on(host, port, latency_ms, timeout_seconds, verbose, random_seed)
        self.limiter = RateLimiter(*rate_limit) if rate_limit else None
        self.app_id = None
        seed(self, cloudflare, provisioning=provisioning, group_push=group_push, mapped=mapped, assigned=assigned,
             scim_token=scim_token, imported=imported)

    # ---- lifecycle --------------------------------------------------------------------------------

    def stop(self):
        running = self._server is not None
        super().stop()
        self.worker.stop()
        if running:
            self.pusher.close()

    @property
    def base_url(self):
        """The org URL (OKTA_ORG_URL): API paths start with /api/v1."""
        return f"http://{self._host}:{self.port}"

    name = "Okta"
    server_header = "nginx"

    def extra_headers(self):
        return [f"X-Okta-Request-Id: {_error_id()}"]

    def environment(self):
        """The variables that point vgmigrate at this emulator."""
        return {"OKTA_ORG_URL": self.base_url, "OKTA_API_TOKEN": self.token}

    # ---- test helpers -----------------------------------------------------------------------------

    def group_members(self):
        """{group name: sorted member ids} of the Okta groups: the IdP side a test or benchmark compares."""
        with self.state.lock:
            return {g["profile"]["name"]: sorted(g["members"]) for g in self.state.groups.values() if g["type"] == "OKTA_GROUP"}

    # ---- request handling -------------------------------------------------------------------------

    def server_error(self, status):
        return _error(status, "E0000009", "Internal Server Error")

    def throttled(self):
        return self._throttled(math.ceil(time.time()) + 1)

    def answer(self, request):
        return self._route(request, request.path, request.headers)

    def _route(self, request, path, headers):
        found = router.match(request.method, path)
        if not found:
            if any(r.pattern.match(path) for r in router.routes):
                return _error(405, "E0000022", "The endpoint does not support the provided HTTP method")
            return _error(404, "E0000007", f"Not found: Resource not found: {path} (PublicResource)")
        route, params = found
        denied = self._authorize(headers, route.handler, path)
        if denied is not None:
            return denied
        budget = None
        if self.limiter is not None:
            allowed, remaining, reset = self.limiter.hit(_bucket(request.method, path))
            if not allowed:
                return self._throttled(math.ceil(time.time()) + reset)
            budget = {"X-Rate-Limit-Limit": str(self.limiter.limit), "X-Rate-Limit-Remaining": str(remaining),
                      "X-Rate-Limit-Reset": str(math.ceil(time.time()) + reset)}
        request.context = Context(self.state, self.pusher, path)
        request.jobs = []
        try:
            with self.state.lock:
                response = route.handler(request, **params)
            for job in request.jobs:  # queue the pushes after the write, outside the state lock
                job()
        except OktaApiError as err:
            response = Response(err.status, err.body(_error_id()))
        if budget:
            response.headers.update(budget)
        return response

    def _authorize(self, headers, handler, path):
        value = (headers.get("Authorization") or "").strip()
        # The official SDK (3.4) sends "SSWS<token>" and "Bearer<token>", without the space; its
        # users' calls work, so Okta must read both spellings.
        found = re.match(r"^(SSWS|Bearer)\s*(\S*)$", value)
        scheme, token = found.groups() if found else ("", "")
        if scheme == "SSWS" and token and secrets.compare_digest(token.encode(), self.token.encode()):
            return None  # an API token acts as its admin: a super admin here
        if scheme == "Bearer" and token in self.access_tokens:
            needed = [s for s in SCOPES.get(handler, ()) if s not in self.access_tokens[token]]
            if not needed:
                return None
            response = _error(403, "E0000006", "You do not have permission to perform the requested action")
            response.headers["WWW-Authenticate"] = (
                f'Bearer authorization_uri="{self.base_url}/oauth2/v1/authorize", realm="{self.base_url}", '
                f'scope="{" ".join(needed)}", error="insufficient_scope", '
                f'error_description="The access token provided does not contain the required scopes.", resource="{path}"')
            return response
        if scheme == "Bearer" and token:
            response = _error(401, "E0000011", "Invalid token provided")
            response.headers["WWW-Authenticate"] = f'Bearer authorization_uri="{self.base_url}/oauth2/v1/authorize", realm="{self.base_url}", error="invalid_token", error_description="The access token is invalid."'
            return response
        return _error(401, "E0000011", "Invalid token provided")

    def _throttled(self, reset_epoch):
        response = _error(429, "E0000047", "API call exceeded rate limit due to too many requests.")
        limit = self.limiter.limit if self.limiter else 600
        response.headers.update({"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(reset_epoch)})
        return response

def _bucket(method, path):
    """Okta counts each endpoint family apart (groups, apps, logs, users): one window per family."""
    parts = path.split("/")
    return parts[3] if len(parts) > 3 else path


def _error_id():
    return "oae" + secrets.token_hex(10)


def _error(status, code, summary, causes=()):
    return Response(status, OktaApiError(status, code, summary, causes).body(_error_id()))

