"""The Authentik adapter: its API client (`/api/v3`: groups, users, SCIM providers and their sync,
applications), the version table, and what the IdP-managed path reads of it (`plan_facts`,
`stale_reasons`). Everything Authentik-specific lives here; the engine speaks to `base.IdP`.

Plain dicts as Authentik returns them, read tolerantly (fields differ between versions; see
`version_at_least` and the version table in the reference notes). Built on the shared HttpClient,
so retries, the 429 pause and token redaction are the Cloudflare client's; Authentik has no
published rate limit, so calls are not paced, only paused when it answers 429.

Only query parameters that are in Authentik's schema are sent: it ignores unknown ones, so a
misspelt filter would silently match everything.
"""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import quote, urlsplit

from .. import iam
from ..errors import AuthentikError, UsageProblem, VgmigrateError
from ..names import looks_like_virtual_group
from ..http import AuthentikRetriesExhausted, HttpClient, RateLimiter, json_answer, same_url
from .base import AdapterDefaults

PAGE_SIZE = 100
API_PATH = "/api/v3"
CF_PREFIX = "CF-"
GROUP_MODEL = "authentik.core.models.Group"
USER_MODEL = "authentik.core.models.User"
SCIM_APP_LABEL = "authentik_providers_scim"
SCIM_MODEL = "scimprovider"
# Authentik's built-in group mapping (`return {"displayName": group.name}`).
DEFAULT_GROUP_MAPPING = "goauthentik.io/providers/scim/group"
TASK_PROBLEMS = ("warning", "error")
SCIM_SYNC_ACTOR = "authentik.providers.scim.tasks.scim_sync"
SCIM_M2M_ACTOR = "authentik.providers.scim.tasks.scim_sync_m2m"
FINISHED_TASK_STATES = ("done", "rejected")
SCHEDULE_APP_LABEL, SCHEDULE_MODEL = "authentik_tasks_schedules", "schedule"


def _segment(value):
    return quote(str(value), safe="")


def _bool(value):
    return "true" if value else "false"


def version_tuple(version):
    """(2026, 5, 6) from "2026.5.6" (or "2026.5.0-rc1", "version/2026.5"); None if unreadable."""
    numbers = re.findall(r"\d+", str(version or ""))
    if not numbers:
        return None
    return tuple(int(n) for n in numbers[:3]) + (0,) * (3 - len(numbers[:3]))


def version_at_least(version, minimum):
    """Is `version` >= `minimum` ("2025.8")? True when the version is unknown: assume a current server."""
    have, need = version_tuple(version), version_tuple(minimum)
    return have is None or have >= need


# Released versions the checks know; a newer one may delete out-of-scope groups (notes: main after 2026.8).
NEWEST_KNOWN = "2026.8"


def behaviours(version):
    """What this Authentik version can do, per the notes' version table (unknown: assume current)."""
    return {
        "single_object_sync": version_at_least(version, "2024.8"),  # plan --mode idp needs it
        "tasks_api": version_at_least(version, "2025.8"),  # else task messages come with the sync status
        "group_filters": version_at_least(version, "2026.2"),  # else every group syncs
        "token_readable": not (version is not None and version_at_least(version, "2026.8")),
    }


def sync_scope(provider, version):
    """"listed": only `group_filters` groups sync; "all": the filter is empty, every group syncs;
    "every group": the version has no group filter at all."""
    if "group_filters" not in provider and not behaviours(version)["group_filters"]:
        return "every group"
    return "listed" if provider.get("group_filters") else "all"


def normalise_base_url(url, variable="AUTHENTIK_URL"):
    """`https://ak.example`, `https://ak.example/` and `https://ak.example/api/v3/` all become
    `https://ak.example/api/v3`; anything that is not an http(s) URL is a UsageProblem."""
    url = (url or "").strip()
    if not url:
        raise UsageProblem(f"no Authentik URL; set {variable} (e.g. https://authentik.example.com)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = url if len(url) <= 60 else url[:60] + "..."
        raise UsageProblem(f"{variable} {shown!r} is not an http(s) URL; set it to your Authentik address, e.g. https://authentik.example.com")
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path += "/v3"
    elif not path.endswith(API_PATH):
        path += API_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"


class AuthentikClient(AdapterDefaults):
    """The Authentik calls vgmigrate makes. Thread-safe (one HttpClient underneath)."""

    name = "Authentik"
    source = "authentik"
    links_groups = True  # its SCIM group links name the Cloudflare group a push made

    def __init__(self, http: HttpClient, sync_timeout=120.0):
        self.http = http
        self.sync_timeout = sync_timeout  # seconds a step waits for a synced group to reach Cloudflare
        self._local = threading.local()
        self._version = None
        self._version_read = False

    @classmethod
    def connect(cls, base_url, token, sync_timeout=120.0, **http_kwargs) -> "AuthentikClient":
        base = normalise_base_url(base_url)
        if not (token or "").strip():
            raise UsageProblem("no Authentik token; set AUTHENTIK_TOKEN (an Authentik API token with intent \"API\")")
        if "limiter" not in http_kwargs:
            # No client-side window (Authentik publishes no limit) but a 429's Retry-After still holds every thread.
            http_kwargs["limiter"] = RateLimiter(limit=None, sleep=http_kwargs.get("sleep", time.sleep))
        http = HttpClient(base, token, base_url_variable="AUTHENTIK_URL", api_error=AuthentikError,
                          retries_error=AuthentikRetriesExhausted, **http_kwargs)
        return cls(http, sync_timeout)

    def __repr__(self):
        return f"AuthentikClient({self.http.base_url!r})"

    # -- paths (what the journal records) ------------------------------------------------------

    def groups_path(self):
        return "/core/groups/"

    def group_path(self, uuid):
        return f"/core/groups/{_segment(uuid)}/"

    def group_users_path(self, uuid, action):
        if action not in ("add_user", "remove_user"):
            raise ValueError("action must be add_user or remove_user")
        return f"{self.group_path(uuid)}{action}/"

    def users_path(self):
        return "/core/users/"

    def providers_path(self):
        return "/providers/scim/"

    def provider_path(self, pk):
        return f"/providers/scim/{_segment(pk)}/"

    def sync_object_path(self, pk):
        return f"{self.provider_path(pk)}sync/object/"

    def sync_status_path(self, pk):
        return f"{self.provider_path(pk)}sync/status/"

    def applications_path(self):
        return "/core/applications/"

    def application_path(self, slug):
        return f"/core/applications/{_segment(slug)}/"

    def scim_group_links_path(self):
        return "/providers/scim_groups/"

    def scim_group_link_path(self, link_id):
        return f"/providers/scim_groups/{_segment(link_id)}/"

    def scim_user_links_path(self):
        return "/providers/scim_users/"

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method, path, params=None, json=None):
        if params:  # Authentik reads booleans as "true"/"false"; requests would send "True"
            params = {k: _bool(v) if isinstance(v, bool) else v for k, v in params.items()}
        response = self.http.request(method, path, params=params, json=json)
        self._local.status = response.status_code
        return response

    def _call(self, method, path, params=None, json=None, *, missing_ok=False):
        """The JSON body of a 2xx answer (None for 204); None for a 404 when `missing_ok`; else AuthentikError."""
        response = self._send(method, path, params, json)
        if missing_ok and response.status_code == 404:
            return None
        return json_answer(response, method, path, AuthentikError, self.http.redact,
                           "is AUTHENTIK_URL the Authentik address (not a login page or proxy)?")

    def _pages(self, path, params=None, *, limit=None):
        """Every item of a paginated list, page by page while `pagination.next` is not 0.

        A body without `pagination` (or a bare list) is one page. `limit` stops after that many items.
        """
        page, seen = 1, 0
        while True:
            body = self._call("GET", path, {**(params or {}), "page": page, "page_size": PAGE_SIZE if limit is None else min(limit, PAGE_SIZE)})
            if isinstance(body, list):
                items, pagination = body, {}
            else:
                body = body or {}
                items, pagination = body.get("results") or [], body.get("pagination") or {}
            for item in items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            try:
                following = int(pagination.get("next") or 0)
            except (TypeError, ValueError):
                following = 0
            if not items or following <= page:  # 0 = last page; never go backwards or loop
                return
            page = following

    # -- server --------------------------------------------------------------------------------

    def version(self):
        """The running version ("2026.5.6"), or None when the token may not read it (403) or the
        server does not say. Read once per client."""
        if not self._version_read:
            try:
                body = self._call("GET", "/admin/version/", missing_ok=True) or {}
            except AuthentikError as err:
                if err.status not in (401, 403):
                    raise
                body = {}
            self._version = body.get("version_current") or None
            self._version_read = True
        return self._version

    def at_least(self, minimum):
        return version_at_least(self.version(), minimum)

    def me(self):
        """`/core/users/me/` (a cheap token check): `{"user": {...}}`."""
        return self._call("GET", "/core/users/me/") or {}

    # -- groups --------------------------------------------------------------------------------

    def cf_groups(self, include_users=True):
        """Groups named as virtual groups (names.looks_like_virtual_group): `search` (a case-insensitive
        substring match on every version) narrows the listing, and the name is checked here."""
        params = {"search": CF_PREFIX, "include_users": _bool(include_users)}
        return [g for g in self._pages(self.groups_path(), params) if looks_like_virtual_group(str(g.get("name") or ""))]

    def groups(self, **filters):
        return list(self._pages(self.groups_path(), filters))

    def group(self, uuid, include_users=True):
        return self._call("GET", self.group_path(uuid), {"include_users": _bool(include_users)}, missing_ok=True)

    def group_by_name(self, name, include_users=True):
        """The group named exactly `name` (the `name` filter is exact and case-sensitive), or None."""
        for group in self._pages(self.groups_path(), {"name": name, "include_users": _bool(include_users)}):
            if group.get("name") == name:
                return group
        return None

    def create_group(self, name, users=(), attributes=None):
        body = {"name": name, "users": list(users)}
        if attributes is not None:
            body["attributes"] = attributes
        return self._call("POST", self.groups_path(), json=body)

    def update_group(self, uuid, **fields):
        """PATCH: only the fields given. Careful: `users` REPLACES the whole member list."""
        return self._call("PATCH", self.group_path(uuid), json=fields)

    def delete_group(self, uuid):
        """Also deletes the group in Cloudflare if a provider synced it."""
        return self._call("DELETE", self.group_path(uuid))

    def add_user(self, uuid, user_pk):
        return self._call("POST", self.group_users_path(uuid, "add_user"), json={"pk": int(user_pk)})

    def remove_user(self, uuid, user_pk):
        return self._call("POST", self.group_users_path(uuid, "remove_user"), json={"pk": int(user_pk)})

    # -- users ---------------------------------------------------------------------------------

    def users(self, **filters):
        """Every user matching the filters (schema names: `email`, `username`, `groups_by_pk` (a list
        repeats the parameter), `is_active`, ...)."""
        return list(self._pages(self.users_path(), filters))

    # -- SCIM providers ------------------------------------------------------------------------

    def scim_providers(self):
        return list(self._pages(self.providers_path()))

    def scim_provider(self, pk):
        """The provider; AuthentikError (status 404) if it is gone."""
        return self._call("GET", self.provider_path(pk))

    def create_scim_provider(self, **fields):
        return self._call("POST", self.providers_path(), json=fields)

    def update_scim_provider(self, pk, **fields):
        """PATCH. Saving a provider starts a full sync on the server."""
        return self._call("PATCH", self.provider_path(pk), json=fields)

    def delete_scim_provider(self, pk):
        return self._call("DELETE", self.provider_path(pk))

    def scim_mappings(self, managed):
        """The SCIM property mappings with this `managed` key (the built-in ones)."""
        return list(self._pages("/propertymappings/provider/scim/", {"managed": managed}))

    def scim_mapping(self, pm_uuid):
        return self._call("GET", f"/propertymappings/provider/scim/{_segment(pm_uuid)}/", missing_ok=True)

    def sync_status(self, pk):
        """`{"is_running", "last_successful_sync", "last_sync_status"}` on every version.

        >= 2025.8 answers that shape. Before, the answer is `{is_running, tasks: [SystemTask]}`: the
        newest task's status is mapped (successful -> done) and its messages kept under
        `legacy_messages`. Before 2024.6 the endpoint was `sync_status/`.
        """
        body = self._call("GET", self.sync_status_path(pk), missing_ok=True)
        if body is None:
            body = self._call("GET", f"{self.provider_path(pk)}sync_status/", missing_ok=True) or {}
        status = {
            "is_running": bool(body.get("is_running")),
            "last_successful_sync": body.get("last_successful_sync"),
            "last_sync_status": body.get("last_sync_status"),
        }
        tasks = body.get("tasks")
        if isinstance(tasks, list) and "last_sync_status" not in body:
            legacy = {"successful": "done", "warning": "warning", "error": "error"}
            ordered = sorted((t for t in tasks if isinstance(t, dict)), key=lambda t: str(t.get("finish_timestamp") or ""))
            if ordered:
                status["last_sync_status"] = legacy.get(str(ordered[-1].get("status") or "").lower())
                done = [t.get("finish_timestamp") for t in ordered if str(t.get("status") or "").lower() == "successful"]
                status["last_successful_sync"] = done[-1] if done else None
            status["legacy_messages"] = [m for t in ordered for m in t.get("messages") or []]
        return status

    def full_sync(self, pk):
        """Start a full sync of the provider now (the provider page's "Run sync") without waiting.

        >= 2025.8: send the provider's `scim_sync` schedule. Before (or without one): save the
        provider unchanged, which starts a full sync on every version. Returns how it was started.
        """
        if self.at_least("2025.8"):
            params = {"rel_obj_content_type__app_label": SCIM_APP_LABEL, "rel_obj_content_type__model": SCIM_MODEL,
                      "rel_obj_id": str(pk), "actor_name": SCIM_SYNC_ACTOR}
            try:
                schedule = next(iter(self._pages("/tasks/schedules/", params)), None)
            except AuthentikError as err:
                if err.status != 404:
                    raise
                schedule = None
            if schedule and schedule.get("id"):
                self._call("POST", f"/tasks/schedules/{_segment(schedule['id'])}/send/")
                return "schedule"
        provider = self.scim_provider(pk)
        self.update_scim_provider(pk, name=provider.get("name"))
        return "save"

    def sync_object(self, pk, group_uuid, model=GROUP_MODEL):
        """Sync one group (or user: model=USER_MODEL, its pk) now and wait for it (>= 2024.8): the
        log events it produced. It honours the provider's dry run."""
        body = {"sync_object_model": model, "sync_object_id": str(group_uuid), "override_dry_run": False}
        answer = self._call("POST", self.sync_object_path(pk), json=body) or {}
        return list(answer.get("messages") or [])

    # -- SCIM links (Authentik object <-> id in Cloudflare's SCIM API) -------------------------

    def scim_group_links(self, provider_pk, group_uuid=None):
        params = {"provider__id": provider_pk}
        if group_uuid is not None:
            params["group__group_uuid"] = str(group_uuid)
        return list(self._pages(self.scim_group_links_path(), params))

    def create_scim_group_link(self, provider_pk, group_uuid, scim_id):
        return self._call("POST", self.scim_group_links_path(), json={"provider": provider_pk, "group": str(group_uuid), "scim_id": scim_id})

    def delete_scim_group_link(self, link_id):
        """Removes the link only; the group stays in Cloudflare."""
        return self._call("DELETE", self.scim_group_link_path(link_id))

    def scim_user_links(self, provider_pk):
        return list(self._pages(self.scim_user_links_path(), {"provider__id": provider_pk}))

    # -- applications --------------------------------------------------------------------------

    def applications(self):
        # superuser_full_list: a superuser's token otherwise lists only the applications it may open.
        return list(self._pages(self.applications_path(), {"superuser_full_list": "true"}))

    def application(self, slug):
        """The application, or None if there is none with this slug."""
        return self._call("GET", self.application_path(slug), missing_ok=True)

    def create_application(self, name, slug, backchannel_providers=()):
        body = {"name": name, "slug": slug, "backchannel_providers": [int(p) for p in backchannel_providers]}
        return self._call("POST", self.applications_path(), json=body)

    def update_application(self, slug, **fields):
        return self._call("PATCH", self.application_path(slug), json=fields)

    def delete_application(self, slug):
        return self._call("DELETE", self.application_path(slug))

    # -- tasks ---------------------------------------------------------------------------------

    def provider_tasks(self, pk, problems_only=False, limit=20):
        """The provider's newest tasks with their `logs` (>= 2025.8: the `/tasks/tasks/` API); [] on
        older servers, whose task messages `sync_status` returns instead."""
        if not self.at_least("2025.8"):
            return []
        params = {
            "rel_obj_content_type__app_label": SCIM_APP_LABEL,
            "rel_obj_content_type__model": SCIM_MODEL,
            "rel_obj_id": str(pk),
            "ordering": "-mtime",
        }
        if problems_only:
            params["aggregated_status"] = list(TASK_PROBLEMS)
        try:
            return list(self._pages("/tasks/tasks/", params, limit=limit))
        except AuthentikError as err:
            if err.status == 404 and self.version() is None:  # an older server of unknown version
                return []
            raise

    def cleans_up(self):
        """Does every full sync delete the Cloudflare groups of linked groups outside group_filters
        (from tag 2026.2.2; every save of the provider starts one)?"""
        return self.at_least("2026.2.2")

    def cleanup_victims(self, provider_pk, group_filters, leaving=()):
        """Names of the groups the full sync after setting `group_filters` would delete in
        Cloudflare: linked, not in the filter (an empty filter keeps every group), not in
        `leaving` (uuids being deleted anyway). [] on versions without the cleanup."""
        if not self.cleans_up() or not group_filters:
            return []
        keep = {str(g) for g in group_filters} | {str(g) for g in leaving}
        out = []
        for link in self.scim_group_links(provider_pk):
            group = str(link.get("group"))
            if group not in keep:
                out.append((link.get("group_obj") or {}).get("name") or group)
        return sorted(out)

    def schedule_tasks(self, pk, problems_only=False, limit=20):
        """The newest tasks of the provider's full-sync schedule: the full syncs and their page
        tasks, where the failures of a full sync are logged (>= 2025.8)."""
        if not self.at_least("2025.8"):
            return []
        params = {"rel_obj_content_type__app_label": SCIM_APP_LABEL, "rel_obj_content_type__model": SCIM_MODEL,
                  "rel_obj_id": str(pk), "actor_name": SCIM_SYNC_ACTOR}
        schedules = list(self._pages("/tasks/schedules/", params, limit=1))
        if not schedules:
            return []
        params = {"rel_obj_content_type__app_label": SCHEDULE_APP_LABEL, "rel_obj_content_type__model": SCHEDULE_MODEL,
                  "rel_obj_id": str(schedules[0]["id"]), "ordering": "-mtime"}
        if problems_only:
            params["aggregated_status"] = list(TASK_PROBLEMS)
        return list(self._pages("/tasks/tasks/", params, limit=limit))

    def group_pushes(self, provider_pk, group_uuid):
        """Message ids of the membership pushes of this group so far (`group_pushes_done` compares)."""
        return {t.get("message_id") for t in self._group_push_tasks(provider_pk, group_uuid)}

    def group_pushes_done(self, provider_pk, group_uuid, before):
        """Has a membership push of this group queued after `before` finished, and no newer one
        still to run? Before 2025.8 (no tasks API) there is no way to see: True."""
        if not self.at_least("2025.8"):
            return True
        new = [t for t in self._group_push_tasks(provider_pk, group_uuid) if t.get("message_id") not in before]
        return bool(new) and all(t.get("state") in FINISHED_TASK_STATES for t in new)

    def _group_push_tasks(self, provider_pk, group_uuid):
        if not self.at_least("2025.8"):
            return []
        params = {"rel_obj_content_type__app_label": SCIM_APP_LABEL, "rel_obj_content_type__model": SCIM_MODEL,
                  "rel_obj_id": str(provider_pk), "actor_name": SCIM_M2M_ACTOR, "ordering": "-mtime"}
        suffix = f":group:{group_uuid}:m2m"
        return [t for t in self._pages("/tasks/tasks/", params, limit=200) if str(t.get("uid") or "").endswith(suffix)]

    # -- the engine's words (migrate/idp/base.py) ----------------------------------------------

    def set_members(self, pk, users):
        """PATCH `users`, which replaces the whole member list."""
        return self.update_group(pk, users=list(users))

    def scope_of(self, provider):
        return list(self.scim_provider(provider).get("group_filters") or [])

    def set_scope(self, provider, groups):
        """PATCH group_filters (the whole list: two at once would lose each other's additions)."""
        return self.update_scim_provider(provider, group_filters=list(groups))

    def scope_path(self, provider):
        return self.provider_path(provider)

    def push(self, provider, group_pk):
        """Sync the group now; the warnings and errors Authentik logged doing it."""
        return log_lines(self.sync_object(provider, group_pk))

    def push_path(self, provider):
        return self.sync_object_path(provider)

    def pushed_id(self, provider, group_pk):
        links = self.scim_group_links(provider, group_pk)
        return next((link["scim_id"] for link in links if link.get("scim_id")), None)

    def link(self, provider, group_pk, scim_id):
        """Link the group to this Cloudflare group (as 2026.2 adopts a 409ed push), unless it is."""
        if any(link.get("scim_id") == scim_id for link in self.scim_group_links(provider, group_pk)):
            return False
        self.create_scim_group_link(provider, group_pk, scim_id)
        return True

    def link_path(self, provider):
        return self.scim_group_links_path()

    def unpush_calls(self, provider, group_pk):
        return []  # deleting the group deletes its User Group in Cloudflare too

    def kept_fields(self, group):
        """What a re-created group needs beyond name, attributes and members."""
        # 2025.12+ renders `parents`, earlier versions one `parent`.
        parents = group["parents"] if "parents" in group else ([group["parent"]] if group.get("parent") else [])
        return {"is_superuser": bool(group.get("is_superuser")), "parents": parents}

    def fields_to_restore(self, pk, kept):
        """The PATCH that gives a re-created group back what `kept_fields` kept ({} if nothing)."""
        group = self.group(pk, include_users=False) or {}
        fields = {}
        if kept.get("is_superuser") and not group.get("is_superuser"):
            fields["is_superuser"] = True
        live = group["parents"] if "parents" in group else ([group["parent"]] if group.get("parent") else [])
        if kept.get("parents") and set(kept["parents"]) != set(live):
            fields.update({"parents": kept["parents"]} if "parents" in group else {"parent": kept["parents"][0]})
        return fields

    # -- the IdP-managed path: what planning and apply read ---------------------------------------

    def plan_facts(self, cloudflare):
        """What `plan --mode idp` needs of Authentik, read before planning (the planner makes no
        calls): the version, the SCIM provider serving this account, its sync scope, the users it has
        pushed to Cloudflare and the group names taken. A one-line error when Authentik cannot carry
        the IdP-managed path."""
        version = self.version()
        scim_url = cloudflare.scim_url()
        provider = next((p for p in self.scim_providers() if same_url(p.get("url"), scim_url)), None)
        if provider is None:
            raise VgmigrateError(f"no Authentik SCIM provider points at {scim_url}; `vgmigrate idp check --fix` creates one")
        if not provider.get("assigned_backchannel_application_slug"):
            raise VgmigrateError(f"Authentik SCIM provider {provider['name']!r} is not attached to an application, so it syncs nothing; "
                                 "`vgmigrate idp check --fix` attaches it")
        if not behaviours(version)["single_object_sync"]:
            raise VgmigrateError(f"Authentik {version} cannot sync one group on demand (needs 2024.8 or later); upgrade it or use --mode api")
        if provider.get("dry_run"):
            raise VgmigrateError(f"Authentik SCIM provider {provider['name']!r} is in dry-run mode: nothing would reach Cloudflare; turn it off first")
        users = {}
        for link in self.scim_user_links(provider["pk"]):
            user = link.get("user_obj") or {}
            email = user.get("email") or user.get("username")
            if email and link.get("user") is not None:
                users[iam.email_key(email)] = link["user"]
        return {
            "name": self.name,
            "source": self.source,
            "url": self.http.base_url,
            "version": version,
            "provider": provider,
            "scope": sync_scope(provider, version),
            "users": users,
            "group_names": [g["name"] for g in self.groups(include_users=False)],
        }

    def stale_reasons(self, plan, ours):
        """What moved in Authentik since an idp-mode plan was made. ours: name keys of the groups this
        plan's journal already made."""
        expected = plan["expected"]["idp_provider"]
        try:
            provider = self.scim_provider(expected["pk"])
        except VgmigrateError as err:
            if getattr(err, "status", None) == 404:
                return [f"Authentik SCIM provider {expected['pk']} is gone"]
            raise
        reasons = []
        if not same_url(provider.get("url"), plan["idp"]["provider"]["url"]):
            reasons.append(f"Authentik SCIM provider {provider['name']!r} now points at {provider.get('url')}")
        if sync_scope(provider, plan["idp"]["version"]) != plan["idp"]["scope"]:
            # Adding groups to an emptied filter would shrink the scope from every group to just these.
            reasons.append(f"the sync scope of Authentik SCIM provider {provider['name']!r} changed")
        live = {iam.name_key(g["name"]) for g in self.groups(include_users=False)}
        for name in plan["expected"]["idp_absent_names"]:
            if iam.name_key(name) in live and iam.name_key(name) not in ours:
                reasons.append(f"an Authentik group named {name!r} now exists")
        return reasons


def log_lines(events, levels=("warning", "error", "critical")):
    """One line per log event at these levels: "<level>: <event> (<attributes that say why>)"."""
    lines = []
    for event in events or []:
        if isinstance(event, str):
            lines.append(event)
            continue
        if not isinstance(event, dict):
            continue
        level = str(event.get("log_level") or event.get("level") or "").lower()
        if levels and level not in levels:
            continue
        text = str(event.get("event") or event.get("message") or "").strip()
        attributes = event.get("attributes") or {}
        extra = [str(attributes[k]) if k == "message" else f"{k}={attributes[k]}"
                 for k in ("message", "error", "status", "url") if isinstance(attributes, dict) and attributes.get(k)]
        lines.append(f"{level}: {text}" + (f" ({', '.join(str(x) for x in extra)})" if extra else ""))
    return lines
