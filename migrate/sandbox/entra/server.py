"""`EntraSandbox`: Microsoft Graph v1.0 and the identity platform's token endpoint on one loopback
server, seeded from a running Cloudflare `Sandbox` and provisioning into it over SCIM."""

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qs

from ..authentik.worker import Worker
from ..faults import RateLimiter
from ..idp_served import IdpServed, scim_view
from ..routing import Response
from .provision import Provisioner
from .routes import GraphError, error_body, router
from .state import State

GRAPH_PREFIX = "/v1.0"
APP_NAME = "Cloudflare"
# What the seeded app registration is granted: everything vgmigrate asks for (the README's list).
FULL_ROLES = frozenset({"Group.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "Application.Read.All",
                        "Synchronization.ReadWrite.All", "AuditLog.Read.All"})


@dataclass
class Context:
    state: State
    provisioner: Provisioner
    roles: frozenset
    graph_url: str


class EntraSandbox(IdpServed):
    """A stateful Entra ID (Graph) emulator; see the package docstring for the options."""

    thread_name = "entra-sandbox"
    name = "Entra ID"
    server_header = "entra-sandbox"
    content_type = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

    def extra_headers(self):
        return [f"request-id: {uuid.uuid4()}"]

    def __init__(self, cloudflare=None, roles=FULL_ROLES, assigned=True, app=True, quarantined=False, scim_token=None,
                 cycle_seconds=2.0, token_lifetime=3599, throttle=None, on_demand_limit=(5, 1.0), host="127.0.0.1",
                 port=0, latency_ms=0, random_seed=0, timeout_seconds=2.0, verbose=False, push_delay=(0.02, 0.25),
                 retry_backoff=0.4, max_retries=5):
        self.state = State(random_seed)
        self.tenant_id = self.state.tenant_id
        self.client_id = str(uuid.UUID(int=self.state._random.getrandbits(128), version=4))
        self.client_secret = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-")
                                     for _ in range(40))
        self.roles = frozenset(roles)
        self.token_lifetime = token_lifetime
        self._tokens = {}  # access token -> (roles, expires at (monotonic))
        self.worker = Worker(delay=push_delay, backoff=retry_backoff, max_retries=max_retries, random_seed=random_seed)
        self.provisioner = Provisioner(self.state, self.worker)
        self._serve_on(host, port, latency_ms, timeout_seconds, verbose, random_seed)
        self.throttle = RateLimiter(*throttle) if throttle else None
        self.on_demand_limit = RateLimiter(*on_demand_limit) if on_demand_limit else None
        self._on_demand_rate = on_demand_limit
        self.cycle_seconds = cycle_seconds
        self.service_principal_id = None
        self._cycler = None
        _seed(self, cloudflare, assigned, app, quarantined, scim_token)

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self):
        super().start()
        if self.cycle_seconds and self._cycler is None:
            self._cycler = threading.Thread(target=self._cycles, daemon=True, name="entra-cycles")
            self._cycler.start()
        return self

    def stop(self):
        running = self._server is not None
        super().stop()
        if self._cycler is not None:
            self._cycler.join(timeout=5)
            self._cycler = None
        self.worker.stop()
        if running:
            self.provisioner.close()

    def _cycles(self):
        while not self._stopping.wait(self.cycle_seconds):
            self.run_cycle()

    @property
    def login_url(self):
        return f"http://{self._host}:{self.port}"

    @property
    def graph_url(self):
        return f"http://{self._host}:{self.port}{GRAPH_PREFIX}"

    base_url = graph_url

    def environment(self):
        """The variables that point vgmigrate at this tenant."""
        env = {"ENTRA_TENANT_ID": self.tenant_id, "ENTRA_CLIENT_ID": self.client_id, "ENTRA_CLIENT_SECRET": self.client_secret,
               "ENTRA_LOGIN_URL": self.login_url, "ENTRA_GRAPH_URL": self.graph_url}
        if self._on_demand_rate and tuple(self._on_demand_rate) != (5, 10.0):
            env["ENTRA_ON_DEMAND_RATE"] = f"{self._on_demand_rate[0]}/{self._on_demand_rate[1]:g}"  # its compressed limit
        return env

    # ---- test helpers -----------------------------------------------------------------------------

    def issue_token(self, roles=None, lifetime=None):
        """A token shaped like Entra's (a JWT whose `roles` claim lists the application permissions);
        its signature is random, as nobody here checks it."""
        roles = frozenset(self.roles if roles is None else roles)
        lifetime = lifetime or self.token_lifetime
        claims = {"aud": "https://graph.microsoft.com", "iss": f"https://sts.windows.net/{self.tenant_id}/", "tid": self.tenant_id,
                  "appid": self.client_id, "roles": sorted(roles), "exp": int(time.time() + lifetime)}
        token = ".".join(_b64(part) for part in ({"typ": "JWT", "alg": "RS256"}, claims)) + "." + secrets.token_urlsafe(32)
        self._tokens[token] = (roles, time.monotonic() + lifetime)
        return token

    def group_members(self):
        """{group name: sorted member ids}: the IdP side a test or benchmark compares before and after."""
        with self.state.lock:
            return {g["displayName"]: sorted(g["members"]) for g in self.state.groups.values()}

    def run_cycle(self):
        """One provisioning cycle of the job now (what the schedule does every 40 minutes)."""
        if self.service_principal_id:
            self.provisioner.cycle(self.service_principal_id)

    # ---- request handling -------------------------------------------------------------------------

    def server_error(self, status):
        return Response(status, error_body("serviceNotAvailable", HTTPStatus(status).phrase))

    def throttled(self):
        return _throttled(1)

    def answer(self, request):
        method, path = request.method, request.path
        if path.endswith("/oauth2/v2.0/token") and path.count("/") == 4:
            return self._token(path, request.body) if method == "POST" else \
                Response(405, _aad("invalid_request", 900561, "The endpoint only accepts POST requests."))
        if path.startswith(GRAPH_PREFIX + "/"):
            request.path = path[len(GRAPH_PREFIX):]
            return self._graph(request)
        return Response(404, error_body("BadRequest", "Invalid version."))

    def _token(self, path, body):
        """The client-credentials grant (AADSTS error shapes)."""
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        tenant = path.split("/")[1]
        if tenant != self.tenant_id:
            return Response(400, _aad("invalid_request", 90002, f"Tenant '{tenant}' not found."))
        if form.get("grant_type") != "client_credentials":
            return Response(400, _aad("unsupported_grant_type", 70003, "The app requested an unsupported grant type."))
        if form.get("client_id") != self.client_id:
            return Response(400, _aad("unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' was not found in the directory."))
        if not secrets.compare_digest(form.get("client_secret", "").encode(), self.client_secret.encode()):
            return Response(401, _aad("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."))
        if form.get("scope") != "https://graph.microsoft.com/.default":
            return Response(400, _aad("invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."))
        return Response(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime,
                              "access_token": self.issue_token()})

    def _graph(self, request):
        found = router.match(request.method, request.path)
        if not found:
            if any(r.pattern.match(request.path) for r in router.routes):
                return Response(405, error_body("Request_BadRequest", "The requested HTTP method is not allowed."))
            return Response(400, error_body("BadRequest", f"Resource not found for the segment '{request.path.strip('/').split('/')[0]}'."))
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        held = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if held is None:
            return Response(401, error_body("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."))
        roles, expires = held
        if time.monotonic() >= expires:
            return Response(401, error_body("InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."))
        if self.throttle:
            allowed, _, reset = self.throttle.hit(token)
            if not allowed:
                return _throttled(reset)
        route, params = found
        if self.on_demand_limit and request.path.endswith("/provisionOnDemand"):
            allowed, _, reset = self.on_demand_limit.hit(token)
            if not allowed:
                return _throttled(reset)
        request.context = Context(self.state, self.provisioner, roles, self.graph_url)
        request.jobs = []
        try:
            with self.state.lock:
                response = route.handler(request, **params)
        except GraphError as err:
            return Response(err.status, error_body(err.code, err.message), headers=err.headers)
        for job in request.jobs:  # queued now: they run after the answer, on the worker
            job()
        return response

def _b64(part):
    return base64.urlsafe_b64encode(json.dumps(part, separators=(",", ":")).encode()).decode().rstrip("=")


def _aad(error, code, description):
    return {"error": error, "error_description": f"AADSTS{code}: {description}", "error_codes": [code],
            "timestamp": formatdate(usegmt=True), "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}


def _throttled(seconds):
    return Response(429, error_body("TooManyRequests", "Too many requests, please try again later."),
                    headers={"Retry-After": str(max(1, int(seconds)))})


# ---- seeding -----------------------------------------------------------------------------------------


def _seed(sandbox, cloudflare, assigned, with_app, quarantined, scim_token):
    state = sandbox.state
    if cloudflare is None:
        return
    scim_users, system, custom, account_id = scim_view(cloudflare)
    by_scim_id = {}
    for remote in scim_users:
        name = remote.get("name") or {}
        full = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p) or remote.get("displayName") or remote["userName"]
        by_scim_id[remote["id"]] = state.add_user(remote["userName"], full, remote["userName"])
    sp = job = None
    if with_app:
        sp = state.add_service_principal(APP_NAME)
        sandbox.service_principal_id = sp["id"]
        job = state.add_job(sp, f"{cloudflare.base_url}/accounts/{account_id}/scim/v2", scim_token or cloudflare.token)
        for scim_id, user in by_scim_id.items():
            state.user_links[(sp["id"], user["id"])] = scim_id
    groups = []
    for gid, display in system.items():
        members = [by_scim_id[u["id"]]["id"] for u in scim_users if gid in u["groups"]]
        if members:
            groups.append((gid, state.add_group(display, members)))
    for gid, name, user_ids in custom:
        if all(u in by_scim_id for u in user_ids):  # else another provider's group
            groups.append((gid, state.add_group(name, [by_scim_id[u]["id"] for u in user_ids])))
    if sp is not None and assigned:
        for gid, group in groups:
            state.assign(sp, group)
            # As if the last cycle wrote it: matched by displayName, every member pushed.
            state.group_links[(sp["id"], group["id"])] = {"scim_id": gid, "members": set(group["members"])}
    outsider = state.add_user("dana.outsider@acme-corp.example", "Dana Outsider", "dana.outsider@acme-corp.example")
    first = next(iter(by_scim_id.values()), None)
    state.add_group("Engineering", [outsider["id"]] + ([first["id"]] if first else []))
    if job is not None and quarantined:
        state.quarantine(sp["id"], "CredentialsInvalid",
                         "Failed to authenticate to the Tenant URL with the Secret Token: HTTP 401 (Unauthorized)")



__all__ = ["EntraSandbox", "FULL_ROLES"]
