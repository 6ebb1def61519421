"""`AuthentikSandbox`: the authentik API emulator over real HTTP/1.1 keep-alive on loopback, seeded
from a running Cloudflare `Sandbox` and pushing SCIM changes into it."""

import os
import secrets
import string
from dataclasses import dataclass
from http import HTTPStatus

from ..idp_served import IdpServed, scim_view
from ..routing import Response
from .routes import AkError, router
from .state import FULL_SYNC_ACTOR, State, now
from .sync import SCIM_GROUP, Pusher, TaskLog, user_payload
from .worker import Worker

PREFIX = "/api/v3"
APPLICATION_SLUG = "cloudflare-dashboard"
PROVIDER_NAME = "Cloudflare SCIM"
_TOKEN_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Context:
    state: State
    pusher: Pusher


class AuthentikSandbox(IdpServed):
    """A stateful authentik API emulator. Use as a context manager or start()/stop().

    cloudflare: a started `migrate.sandbox.Sandbox` to seed from and push into (None: an empty
    authentik with no provider). See the package docstring for the options.
    """

    thread_name = "authentik-sandbox"

    def __init__(self, cloudflare=None, version="2026.5.6", attached=True, scope="listed", provider=True,
                 provider_token=None, token=None, host="127.0.0.1", port=0, latency_ms=0, random_seed=0,
                 timeout_seconds=2.0, verbose=False, push_delay=(0.02, 0.25), retry_backoff=0.4, max_retries=5,
                 object_sync_wait=10.0, linked=True):
        if scope not in ("listed", "all"):
            raise ValueError("scope must be 'listed' or 'all'")
        self.state = State(version, random_seed=random_seed)
        # Like authentik's API tokens: 60 letters and digits (safe anywhere on a command line).
        self.token = token or "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(60))
        self.worker = Worker(delay=push_delay, backoff=retry_backoff, max_retries=max_retries, random_seed=random_seed)
        self.pusher = Pusher(self.state, self.worker, object_wait=object_sync_wait)
        self._serve_on(host, port, latency_ms, timeout_seconds, verbose, random_seed)
        self.provider_id = None
        _seed(self, cloudflare, attached, scope, provider, provider_token, linked)

    # ---- lifecycle --------------------------------------------------------------------------------

    def stop(self):
        running = self._server is not None
        super().stop()
        self.worker.stop()
        if running:
            self.pusher.close()

    @property
    def base_url(self):
        return f"http://{self._host}:{self.port}{PREFIX}"

    name = "Authentik"
    server_header = "authentik-sandbox"

    def extra_headers(self):
        return [f"X-authentik-id: {os.urandom(16).hex()}"]

    def environment(self):
        """The variables that point vgmigrate at this emulator."""
        return {"AUTHENTIK_URL": self.base_url, "AUTHENTIK_TOKEN": self.token}

    # ---- test helpers -----------------------------------------------------------------------------

    def full_sync(self, provider_pk=None):
        """Run a full sync now (what the schedule's send does) and wait for every push it causes;
        returns its task."""
        pk = provider_pk or self.provider_id
        self.pusher.full_sync(pk)
        self.settle()
        with self.state.lock:
            return self.state.provider_tasks(pk, FULL_SYNC_ACTOR)[-1]

    def group_members(self):
        """{group name: sorted member ids}: the IdP side a test or benchmark compares before and after."""
        with self.state.lock:
            return {g["name"]: sorted(g["users"]) for g in self.state.groups.values()}

    # ---- request handling -------------------------------------------------------------------------

    def fault_path(self, path):
        return path[len(PREFIX):] if path.startswith(PREFIX + "/") else path

    def server_error(self, status):
        return Response(status, {"detail": HTTPStatus(status).phrase})

    def throttled(self):
        return Response(429, {"detail": "Request was throttled."}, headers={"Retry-After": "1"})

    def answer(self, request):
        api_path = request.path[len(PREFIX):] if request.path.startswith(PREFIX + "/") else None
        if api_path is not None:
            request.path = api_path
        return self._route(request, api_path, request.headers)

    def _route(self, request, api_path, headers):
        found = router.match(request.method, api_path) if api_path is not None else None
        if not found:
            if api_path is not None and any(r.pattern.match(api_path) for r in router.routes):
                return Response(405, {"detail": f'Method "{request.method}" not allowed.', "code": "method_not_allowed"})
            return Response(404, {"detail": "Not found.", "code": "not_found"})
        denied = self._authenticate(headers)
        if denied is not None:
            return denied
        route, params = found
        request.context = Context(self.state, self.pusher)
        request.jobs = []
        try:
            with self.state.lock:
                result = route.handler(request, **params)
            # Signals and blocking syncs run here: after the write, outside the state lock.
            if callable(result):
                result = result()
            for job in request.jobs:
                self._run_job(job)
            return result
        except AkError as err:
            return Response(err.status, err.body)

    def _run_job(self, job):
        try:
            job()
        except Exception as err:  # noqa: BLE001 - a failed task is a task entry, never a 500
            task = TaskLog()
            task.error(f"Task failed: {type(err).__name__}: {err}")
            with self.state.lock:
                self.state.record_task(self.provider_id, "authentik.providers.scim.tasks", "failed", task.logs, failed=True)

    def _authenticate(self, headers):
        value = headers.get("Authorization")
        if not value:
            return Response(403, {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.token.encode()):
            return Response(403, {"detail": "Token invalid/expired", "code": "authentication_failed"})
        return None

# ---- seeding ----------------------------------------------------------------------------------------


def _seed(sandbox, cloudflare, attached, scope, with_provider, provider_token, linked=True):
    state = sandbox.state
    owner = state.add_user("akadmin", "authentik Default Admin", "akadmin@authentik.example")
    owner["is_superuser"] = True
    state.owner_pk = owner["pk"]
    state.unbound_users.add(owner["pk"])
    state.add_group("authentik Admins", users=[owner["pk"]], is_superuser=True)
    if cloudflare is None:
        return
    scim_users, system, custom, account_id = scim_view(cloudflare)
    by_scim_id = {}
    for remote in scim_users:
        name = remote.get("name") or {}
        full = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p) or remote.get("displayName") or remote["userName"]
        user = state.add_user(remote["userName"], full, remote["userName"], is_active=remote["active"])
        by_scim_id[remote["id"]] = user
    provider = None
    if with_provider:
        provider = state.add_provider(PROVIDER_NAME, f"{cloudflare.base_url}/accounts/{account_id}/scim/v2",
                                      provider_token or cloudflare.token)
        sandbox.provider_id = provider["pk"]
        for scim_id, user in by_scim_id.items():
            # As if the last sync wrote them: an unchanged user is not sent again.
            state.add_link("user", provider["pk"], user["pk"], scim_id, dict(user_payload(user), id=scim_id))
    listed = []
    for gid, display in system.items():
        members = [by_scim_id[u["id"]]["pk"] for u in scim_users if gid in u["groups"]]
        if not members:
            continue
        group = state.add_group(display, users=members)
        listed.append(group["pk"])
        if provider and linked:
            _link_group(state, provider, group, gid)
    for gid, name, user_ids in custom:
        group = state.add_group(name, users=[by_scim_id[u]["pk"] for u in user_ids if u in by_scim_id])
        if not all(u in by_scim_id for u in user_ids):
            continue  # members no IdP user stands for: another provider's group (a sync of ours would drop them)
        listed.append(group["pk"])  # in scope, or a 2026.2.2+ full sync would have deleted it already
        if provider:
            _link_group(state, provider, group, gid)
    # Unrelated to Cloudflare: a group with a CF user and an IdP-only user, and an empty one.
    outsider = state.add_user("dana.outsider@acme-corp.example", "Dana Outsider", "dana.outsider@acme-corp.example")
    state.unbound_users.add(outsider["pk"])  # no binding of the application lets her in
    first = next(iter(by_scim_id.values()), None)
    state.add_group("Engineering", users=[outsider["pk"]] + ([first["pk"]] if first else []))
    state.add_group("Contractors")
    if provider:
        if scope == "listed":
            provider["group_filters"] = listed
        state.add_application("Cloudflare Dashboard", APPLICATION_SLUG, backchannel_providers=[provider["pk"]] if attached else [])
        if attached and not provider_token:
            # The account has been provisioned by this provider: its last full sync went well.
            state.record_task(provider["pk"], FULL_SYNC_ACTOR, f"{PROVIDER_NAME}:full", schedule=True, logs=
                              [{"timestamp": now(), "log_level": "info", "logger": "authentik.providers.scim.tasks",
                                "event": "Starting full provider sync", "attributes": {}}])


def _link_group(state, provider, group, scim_id):
    # As if the last sync wrote it: an unchanged group is not rewritten (only its members are read).
    payload = {"schemas": [SCIM_GROUP], "displayName": group["name"], "externalId": group["pk"], "id": scim_id}
    state.add_link("group", provider["pk"], group["pk"], scim_id, payload)



__all__ = ["AuthentikSandbox"]
