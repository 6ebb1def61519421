"""The Okta adapter: its Management API client (`/api/v1`: groups and their members, apps, their
group assignments, app users and provisioning connection, Group Push mappings, the System Log) and
what the IdP-managed path reads of it. Everything Okta-specific lives here; the engine speaks to
`base.IdP`.

In the engine's words: the **provider** is the Okta app that provisions this Cloudflare account
(the one whose provisioning connection's `baseUrl` is the account's SCIM endpoint, or `OKTA_APP_ID`);
the **scope** is the set of groups assigned to that app; a **push** makes sure the group has an
ACTIVE Group Push mapping on it (created, or an INACTIVE or failed one activated, never a second
one). A group vgmigrate made carries its marker as JSON in `profile.description`.

Where each fact comes from:
- Okta's OpenAPI, okta/okta-management-openapi-spec at fdda229e82940cf5af4611ad673ca6a27974e31b,
  `dist/2026.06.2/management-minimal.yaml` (the fragments used are in tests/schemas/okta/): the
  paths, parameters, bodies and answers of Groups (`search` on `type` and `profile.name`, `/groups/{id}/users/{userId}` PUT and
  DELETE), Applications (`/apps/{appId}/groups/{groupId}`, `/apps/{appId}/users`,
  `/apps/{appId}/connections/default` and its `baseUrl`, `features` incl. `GROUP_PUSH`), Group Push
  Mappings (create with `targetGroupName` or `targetGroupId`, PATCH `status`, DELETE only when
  INACTIVE with the required `deleteTargetGroup`, `lastPush`, `errorSummary`, status ERROR), the
  System Log, the error object (E0000006 access denied, E0000011 invalid token, E0000047 rate limit),
  `apiToken` (`Authorization: SSWS`) and `oauth2` (`Authorization: Bearer`) and each operation's scopes.
- developer.okta.com, "Okta Admin Management API" pages: `Link` header pagination (rel="next", an
  opaque `after` cursor), the `X-Rate-Limit-Limit/-Remaining/-Reset` headers (Reset in epoch seconds)
  and the 429; a 403 for a missing scope names it in `WWW-Authenticate` (`error="insufficient_scope"`).
- help.okta.com, "Group Push operations" and "About Group Push": pushes are asynchronous; only
  members assigned to the app and provisioned are pushed; unlinking can delete the target group.
- developers.cloudflare.com, "Provision with Okta": the app's SCIM 2.0 Base URL is
  `.../accounts/<id>/scim/v2`, "Import Groups" off, groups pushed from the Push Groups tab; a user
  removed from the app's assignments is deprovisioned in Cloudflare.
- okta/okta-developer-docs, `docs/reference/scim/scim-20/index.md` at
  02e8ee86314bfa4795f3cd29fe9465cce3a0a20a ("Okta and SCIM Version 2.0"): Okta's group create sends
  `displayName` and empty `members`, no `externalId` (so the engine finds the pushed group by its
  name: `sends_external_id` is False); a membership update is a PATCH add/remove, preceded by a
  name PATCH; a user is deactivated with `active: false`, never deleted; "Unlink pushed group"
  sends DELETE /Groups/{id} when told to delete the group in the target app.

Resting on documentation only (no real Okta org could be run here; the emulator follows the same
reading): the System Log event type of a finished membership push
(`application.provision.group_push.push_memberships`) and that one is written per push; that a
mapping pushing a name Cloudflare refuses ends in ERROR with the reason in `errorSummary`; that
setting a mapping ACTIVE again pushes the group and its members at once; that a group's app
group (a mapping's target) stays in Okta when its source group or mapping goes without
deleteTargetGroup, so a new mapping can link to it; `source.id` in a group search; that Okta
never links by itself to a group Cloudflare already has (a 409 on its create leaves the mapping in
ERROR until a person imports the app's groups and links it); that the official SDK's
`SSWS<token>` (no space) is accepted.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlsplit

from .. import iam
from ..errors import OktaError, OutcomeUnknown, UsageProblem, VgmigrateError
from ..http import HttpClient, NetworkError, RateLimiter, RetriesExhausted, json_answer, same_url
from ..names import looks_like_virtual_group
from .base import AdapterDefaults

API = "/api/v1"
PUSH_MEMBERSHIPS = "application.provision.group_push.push_memberships"
# Page sizes: each list's documented maximum (or Okta's default where it is larger than needed).
INACTIVE = ("SUSPENDED", "DEPROVISIONED")  # user statuses Okta deprovisions in the app
PAGE = {"groups": 1000, "users": 1000, "apps": 200, "app_groups": 200, "app_users": 500, "mappings": 1000, "logs": 1000}


class OktaRetriesExhausted(RetriesExhausted, OktaError):
    """Okta kept answering 429 or 5xx (an OktaError, so it reads "Okta API ... failed")."""

    RATE_ADVICE = ("Okta kept answering 429 (its rate limit for this endpoint is used up, X-Rate-Limit-Reset says "
                   "until when): wait a minute and run the command again")
    TROUBLE_ADVICE = "Okta is having trouble: wait a few minutes and run the command again"


def _segment(value):
    return quote(str(value), safe="")


def _quoted(value):
    """A string literal in Okta's filter and search expressions."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalise_org_url(url, variable="OKTA_ORG_URL"):
    """`https://acme.okta.com`, with or without a trailing `/` or `/api/v1`; the Admin Console's
    `acme-admin.okta.com` is refused (the API answers on the org address)."""
    url = (url or "").strip()
    if not url:
        raise UsageProblem(f"no Okta org URL; set {variable} (e.g. https://acme.okta.com)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = url if len(url) <= 60 else url[:60] + "..."
        raise UsageProblem(f"{variable} {shown!r} is not an http(s) URL; set it to your Okta org address, e.g. https://acme.okta.com")
    host = parts.netloc
    first, dot, rest = host.partition(".")
    if first.endswith("-admin") and dot:
        raise UsageProblem(f"{variable} is the Admin Console address; set it to the org address https://{first[:-6]}.{rest}")
    path = parts.path.rstrip("/")
    if path.endswith(API):
        path = path[: -len(API)]
    return f"{parts.scheme}://{host}{path}"


def marker_of(description):
    """The attributes a group's description carries: {"vgmigrate": marker} on a group vgmigrate
    made (its description is that JSON), else {}."""
    try:
        value = json.loads(description or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) and isinstance(value.get("vgmigrate"), dict) and len(value) == 1 else {}


def app_id_of(provider):
    """The app id from a provider given as its dict ({"pk": ...}) or as the id itself."""
    return str(provider["pk"] if isinstance(provider, dict) else provider)


class OktaClient(AdapterDefaults):
    """The Okta calls vgmigrate makes. Thread-safe (one HttpClient underneath)."""

    name = "Okta"
    source = "okta"
    # Okta keeps no link the engine could read (a mapping's targetGroupId is Okta's own app group),
    # and its push sends no externalId: the engine finds the pushed group by its name.
    links_groups = False
    sends_external_id = False

    def __init__(self, http: HttpClient, app_id=None, sync_timeout=120.0, page_size=None):
        self.http = http
        self.app_id = app_id  # OKTA_APP_ID: the app to use, else found by its SCIM base URL
        self.sync_timeout = sync_timeout
        self.page_size = page_size  # tests: small pages
        self._local = threading.local()

    @classmethod
    def connect(cls, org_url, api_token=None, access_token=None, app_id=None, sync_timeout=120.0, **http_kwargs) -> "OktaClient":
        base = normalise_org_url(org_url)
        api_token, access_token = (api_token or "").strip(), (access_token or "").strip()
        if api_token and access_token:
            raise UsageProblem("both OKTA_API_TOKEN and OKTA_ACCESS_TOKEN are set; unset one of them")
        if not (api_token or access_token):
            raise UsageProblem("no Okta token; set OKTA_API_TOKEN (an API token, sent as SSWS) or OKTA_ACCESS_TOKEN (an OAuth access token)")
        if "limiter" not in http_kwargs:
            # No fixed window: Okta's limits differ per endpoint and org; its X-Rate-Limit-* headers pace the calls.
            http_kwargs["limiter"] = RateLimiter(limit=None, sleep=http_kwargs.get("sleep", time.sleep))
        http = HttpClient(base, api_token or access_token, base_url_variable="OKTA_ORG_URL", api_error=OktaError,
                          retries_error=OktaRetriesExhausted, auth_scheme="SSWS" if api_token else "Bearer", **http_kwargs)
        return cls(http, (app_id or "").strip() or None, sync_timeout)

    def __repr__(self):
        return f"OktaClient({self.http.base_url!r})"

    # -- paths (what the journal records) ------------------------------------------------------

    def groups_path(self):
        return f"{API}/groups"

    def group_path(self, pk):
        return f"{API}/groups/{_segment(pk)}"

    def group_user_path(self, pk, user_pk):
        return f"{self.group_path(pk)}/users/{_segment(user_pk)}"

    def app_path(self, app_id):
        return f"{API}/apps/{_segment(app_id)}"

    def scope_path(self, provider):
        return f"{self.app_path(app_id_of(provider))}/groups"

    def push_path(self, provider):
        return f"{self.app_path(app_id_of(provider))}/group-push/mappings"

    def mapping_path(self, provider, mapping_id):
        return f"{self.push_path(provider)}/{_segment(mapping_id)}"

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method, path, params=None, json=None):
        if params:
            params = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
        response = self.http.request(method, path, params=params, json=json)
        self._local.status = response.status_code
        self._local.request_id = response.headers.get("X-Okta-Request-Id")
        return response

    def _check(self, response, method, path, missing_ok=False):
        if missing_ok and response.status_code == 404:
            return None
        return json_answer(response, method, path, OktaError, self.http.redact,
                           "is OKTA_ORG_URL the Okta org address (not a login page or proxy)?")

    def _call(self, method, path, params=None, json=None, *, missing_ok=False):
        """The JSON body of a 2xx answer (None for 204); None for a 404 when `missing_ok`; else OktaError."""
        return self._check(self._send(method, path, params, json), method, path, missing_ok)

    def _pages(self, path, params=None, page="groups"):
        """Every item of a list, following `Link: <...>; rel="next"` (an opaque cursor) page by page."""
        params = {**(params or {}), "limit": self.page_size or PAGE[page]}
        seen = set()
        while True:
            response = self._send("GET", path, params)
            body = self._check(response, "GET", path)
            yield from body or []
            following = (response.links.get("next") or {}).get("url")
            if not following or not body:
                return
            parts = urlsplit(following)
            base = urlsplit(self.http.base_url)
            if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
                raise OktaError(response.status_code, [f"the next page is on another host ({parts.netloc})"], method="GET", path=path)
            path, params = parts.path[len(base.path):] if base.path else parts.path, dict(parse_qsl(parts.query))
            if parts.query in seen:  # a server that hands back the same cursor would loop forever
                return
            seen.add(parts.query)

    # -- groups --------------------------------------------------------------------------------

    def me(self):
        """One group (a cheap call that proves the token and its okta.groups.read)."""
        return {"groups": self._call("GET", self.groups_path(), {"limit": 1})}

    def _as_group(self, raw, include_users, members=True):
        """The engine's group: "users" (member ids) always, but for a listing of names (`members`
        False: None); "users_obj" too when `include_users` (the same call gives both)."""
        profile = raw.get("profile") or {}
        group = {"pk": raw["id"], "name": profile.get("name") or "", "attributes": marker_of(profile.get("description")),
                 "type": raw.get("type"), "users": None}
        if members:
            users = list(self._pages(f"{self.group_path(raw['id'])}/users", page="users"))
            group["users"] = [u["id"] for u in users]
            if include_users:
                group["users_obj"] = [{"pk": u["id"], "email": (u.get("profile") or {}).get("email"),
                                       "username": (u.get("profile") or {}).get("login"), "is_active": u.get("status") not in INACTIVE}
                                      for u in users]
        return group

    def groups(self, search=None):
        """Okta groups (not app groups or Everyone), optionally matching a search expression; their
        names and attributes, not their members."""
        params = {"search": 'type eq "OKTA_GROUP"' + (f" and {search}" if search else "")}
        return [self._as_group(g, False, members=False) for g in self._pages(self.groups_path(), params)]

    def cf_groups(self, include_users=True):
        """Groups named as virtual groups, with their members. Every Okta group is listed and the
        name checked here: `profile.name sw "CF-"` would miss the variants seen in the wild that
        start with a space, and any of them may still grant a role in Cloudflare."""
        found = self._pages(self.groups_path(), {"search": 'type eq "OKTA_GROUP"'})
        return [self._as_group(g, include_users) for g in found if looks_like_virtual_group(str((g.get("profile") or {}).get("name") or ""))]

    def group(self, pk, include_users=True):
        raw = self._call("GET", self.group_path(pk), missing_ok=True)
        return None if raw is None else self._as_group(raw, include_users)

    def group_by_name(self, name, include_users=True):
        """The Okta group named exactly `name`, or None."""
        for group in self.groups(search=f"profile.name eq {_quoted(name)}"):
            if group["name"] == name:
                return self.group(group["pk"], include_users)
        return None

    def create_group(self, name, users=(), attributes=None):
        """POST the group, then add its members one by one. Safe to send again: a group of this
        name carrying the same attributes is the one an earlier attempt made, and only its missing
        members are added."""
        profile = {"name": name}
        if attributes:
            profile["description"] = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
        try:
            raw = self._call("POST", self.groups_path(), json={"profile": profile})
            pk = raw["id"]
        except OktaError as err:
            existing = next((g for g in self.groups(search=f"profile.name eq {_quoted(name)}") if g["name"] == name), None) \
                if err.status == 400 else None
            if existing is None or existing["attributes"] != (attributes or {}):
                raise
            pk = existing["pk"]
        self._then(lambda: self.set_members(pk, users), "PUT", self.group_path(pk))
        return self.group(pk)

    @staticmethod
    def _then(rest, method, path):
        """The rest of a write of several calls, the first of which took effect: a failure now
        leaves it part way, so its outcome is unknown (the journal keeps it pending, and the next
        run or a rollback takes it from live state) rather than failed (which nobody undoes)."""
        try:
            return rest()
        except (OktaError, NetworkError) as err:
            raise OutcomeUnknown(method, path, err) from None

    def set_members(self, pk, users):
        """Exactly these members: reads them, then adds and removes only the difference."""
        wanted = [str(u) for u in users]
        current = set((self.group(pk) or {}).get("users") or [])
        calls = [(self.add_user, u) for u in wanted if u not in current] + [(self.remove_user, u) for u in sorted(current - set(wanted))]
        for n, (call, user) in enumerate(calls):
            if n == 0:
                call(pk, user)
            else:
                self._then(lambda call=call, user=user: call(pk, user), "PUT" if call == self.add_user else "DELETE",
                           self.group_user_path(pk, user))

    def add_user(self, pk, user_pk):
        return self._call("PUT", self.group_user_path(pk, user_pk))

    def remove_user(self, pk, user_pk):
        return self._call("DELETE", self.group_user_path(pk, user_pk))

    def delete_group(self, pk):
        return self._call("DELETE", self.group_path(pk))

    # -- apps ----------------------------------------------------------------------------------

    def apps(self):
        return list(self._pages(f"{API}/apps", {"filter": 'status eq "ACTIVE"'}, page="apps"))

    def app(self, app_id):
        return self._call("GET", self.app_path(app_id), missing_ok=True)

    def connection(self, app_id):
        """The app's provisioning connection ({"status", "baseUrl", ...}), or None if it has none."""
        try:
            return self._call("GET", f"{self.app_path(app_id)}/connections/default", missing_ok=True)
        except OktaError as err:
            if err.status in (400, 501):  # an app that cannot provision
                return None
            raise

    def features(self, app_id):
        try:
            return self._call("GET", f"{self.app_path(app_id)}/features", missing_ok=True) or []
        except OktaError as err:
            if err.status == 400:  # provisioning off: no features to list
                return []
            raise

    def app_users(self, app_id):
        return list(self._pages(f"{self.app_path(app_id)}/users", page="app_users"))

    def find_app(self, scim_url):
        """(app, connection) of the app that provisions `scim_url` (OKTA_APP_ID when set), or (None, None)."""
        if self.app_id:
            app = self.app(self.app_id)
            if app is None:
                raise VgmigrateError(f"OKTA_APP_ID {self.app_id} is not an app in this Okta org; unset it or set it to the "
                                     "id of the app that provisions Cloudflare (Applications > the app > its URL)")
            return app, self.connection(self.app_id) or {}
        for app in self.apps():
            connection = self.connection(app["id"])
            if connection and same_url(connection.get("baseUrl"), scim_url):
                return app, connection
        return None, None

    # -- the push scope (groups assigned to the app) ---------------------------------------------

    def scope_of(self, provider):
        return [a["id"] for a in self._pages(self.scope_path(provider), page="app_groups")]

    def set_scope(self, provider, groups):
        """Assign exactly these groups to the app: PUT the missing ones, DELETE the others. A user no
        group (nor a direct assignment) assigns any more is deactivated in Cloudflare by Okta."""
        wanted = [str(g) for g in groups]
        current = self.scope_of(provider)
        calls = [("PUT", g) for g in wanted if g not in current] + [("DELETE", g) for g in current if g not in wanted]
        for n, (method, group) in enumerate(calls):
            path = f"{self.scope_path(provider)}/{_segment(group)}"
            send = (lambda path=path: self._call("PUT", path, json={})) if method == "PUT" else \
                (lambda path=path: self._call("DELETE", path, missing_ok=True))
            send() if n == 0 else self._then(send, method, path)

    # -- Group Push ------------------------------------------------------------------------------

    def mappings(self, provider, source_group=None):
        params = {"sourceGroupId": source_group} if source_group else None
        return list(self._pages(self.push_path(provider), params, page="mappings"))

    def mapping_for(self, provider, group_pk):
        return next((m for m in self.mappings(provider, group_pk) if m.get("sourceGroupId") == group_pk), None)

    def create_mapping(self, provider, group_pk, target_name):
        body = {"sourceGroupId": group_pk, "targetGroupName": target_name, "status": "ACTIVE"}
        return self._call("POST", self.push_path(provider), json=body)

    def link_mapping(self, provider, group_pk, target_group_id):
        """An ACTIVE mapping to a group already in Cloudflare, through the app group Okta imported for it."""
        body = {"sourceGroupId": group_pk, "targetGroupId": target_group_id, "status": "ACTIVE"}
        return self._call("POST", self.push_path(provider), json=body)

    def app_groups(self, provider):
        """The app's groups imported into Okta (type APP_GROUP): [{"pk", "name"}]."""
        search = f'type eq "APP_GROUP" and source.id eq {_quoted(app_id_of(provider))}'
        return [{"pk": g["id"], "name": (g.get("profile") or {}).get("name") or ""}
                for g in self._pages(self.groups_path(), {"search": search})]

    def set_mapping_status(self, provider, mapping_id, status):
        return self._call("PATCH", self.mapping_path(provider, mapping_id), json={"status": status}, missing_ok=True)

    def delete_mapping(self, provider, mapping_id, delete_target):
        return self._call("DELETE", self.mapping_path(provider, mapping_id), {"deleteTargetGroup": bool(delete_target)}, missing_ok=True)

    def push(self, provider, group_pk):
        """Make sure an ACTIVE mapping pushes the group: create it (target name = the group's name),
        or activate an INACTIVE or failed one. Never a second mapping for the same group. Returns
        the problems Okta reported at once (a failed earlier push it retries)."""
        mapping = self.mapping_for(provider, group_pk)
        if mapping is None:
            group = self.group(group_pk, include_users=False)
            if group is None:
                return [f"Okta group {group_pk} is gone"]
            try:
                self.create_mapping(provider, group_pk, group["name"])
            except OutcomeUnknown:
                if self.mapping_for(provider, group_pk) is None:  # it did not happen: safe to send once more
                    self.create_mapping(provider, group_pk, group["name"])
            return []
        if mapping.get("status") != "ACTIVE":
            self.set_mapping_status(provider, mapping["id"], "ACTIVE")
        return []

    def pushed_id(self, provider, group_pk):
        """Okta's own handle on the group it pushed: its mapping's targetGroupId (an app group in
        Okta), which `link` takes back. Okta never tells the Cloudflare id (`links_groups` is False)."""
        mapping = self.mapping_for(provider, group_pk)
        return (mapping or {}).get("targetGroupId") or None

    def push_problems(self, provider, group_pk):
        """Why the group's push failed, if its mapping says so (status ERROR, with `errorSummary`).
        A name Cloudflare already has (409) is most often this group's own earlier push whose answer
        was lost: Okta then never links to it by itself, so the line says how to."""
        mapping = self.mapping_for(provider, group_pk)
        if not mapping or mapping.get("status") != "ERROR":
            return []
        summary = mapping.get("errorSummary") or "the Group Push mapping is in ERROR"
        if "409" in summary or "already exists" in summary:
            # First, as the step's message keeps only so much of it.
            summary = ("Cloudflare already has a group of that name, likely this one's from a push whose answer was lost, which Okta "
                       "never links by itself: turn on Import Groups in the app, import, link the push to it; Okta said: " + summary)
        return [summary]

    def link(self, provider, group_pk, target):
        """An ACTIVE mapping from the group to `target` (what `pushed_id` gave for the group before:
        the app group that stands for the Cloudflare group), unless the group has a mapping."""
        if self.mapping_for(provider, group_pk) is not None:
            return False
        self.link_mapping(provider, group_pk, target)
        return True

    def link_path(self, provider):
        return self.push_path(provider)

    def unpush_calls(self, provider, group_pk):
        """Deactivate the group's mapping, then delete it and its Cloudflare group (a mapping is
        deleted only when INACTIVE). Both tolerate a mapping already gone."""
        mapping = self.mapping_for(provider, group_pk)
        if mapping is None:
            return []
        path = self.mapping_path(provider, mapping["id"])
        return [
            ("PATCH", path, lambda: self.set_mapping_status(provider, mapping["id"], "INACTIVE"), "deactivate the Group Push mapping"),
            ("DELETE", f"{path}?deleteTargetGroup=true", lambda: self.delete_mapping(provider, mapping["id"], True),
             "delete the Group Push mapping and its group in Cloudflare"),
        ]

    def logs(self, filter_expression, since=None):
        params = {"filter": filter_expression, "sortOrder": "ASCENDING"}
        if since:
            params["since"] = since
        return list(self._pages(f"{API}/logs", params, page="logs"))

    def group_pushes(self, provider, group_pk):
        """Ids of the System Log events of finished membership pushes of this group to this app."""
        since = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        expression = f"eventType eq {_quoted(PUSH_MEMBERSHIPS)} and target.id eq {_quoted(group_pk)}"
        app = app_id_of(provider)
        return {e["uuid"] for e in self.logs(expression, since) if any(t.get("id") == app for t in e.get("target") or [])}

    def group_pushes_done(self, provider, group_pk, before):
        """Has a membership push of this group finished since `before` was read? Okta logs a push
        only once it finished and shows no queue, so a push still queued cannot be seen."""
        return bool(self.group_pushes(provider, group_pk) - set(before))

    # -- the IdP-managed path: what planning and apply read ---------------------------------------

    def plan_facts(self, cloudflare):
        """What `plan --mode idp` needs of Okta, read before planning: the app provisioning this
        account, the users it has provisioned there, and the group names taken. A one-line error
        when Okta cannot carry the IdP-managed path."""
        scim_url = cloudflare.scim_url()
        app, connection = self.find_app(scim_url)
        if app is None:
            raise VgmigrateError(f"no Okta app provisions {scim_url}: set its SCIM 2.0 Base URL to it (see the README, Okta), "
                                 "or set OKTA_APP_ID; `vgmigrate idp check` shows what it finds")
        label = app.get("label") or app["id"]
        if (connection or {}).get("status") != "ENABLED":
            raise VgmigrateError(f"provisioning of Okta app {label!r} is off: enable its API integration (Provisioning tab) first")
        if not same_url(connection.get("baseUrl"), scim_url):
            raise VgmigrateError(f"Okta app {label!r} (OKTA_APP_ID) provisions {connection.get('baseUrl')}, not {scim_url}; "
                                 "unset OKTA_APP_ID or point it at the right app")
        if "GROUP_PUSH" not in (app.get("features") or []):
            raise VgmigrateError(f"Group Push is off in Okta app {label!r}: turn it on (its Push Groups tab) first")
        users = {}
        for record in self.app_users(app["id"]):
            email = (record.get("credentials") or {}).get("userName") or (record.get("profile") or {}).get("email")
            if record.get("status") == "PROVISIONED" and record.get("externalId") and email:
                users[iam.email_key(email)] = record["id"]
        return {
            "name": self.name,
            "source": self.source,
            "url": self.http.base_url,
            "version": None,
            "provider": {"pk": app["id"], "name": label, "url": connection.get("baseUrl")},
            "scope": "listed",
            "users": users,
            "group_names": [g["name"] for g in self.groups()],
        }

    def stale_reasons(self, plan, ours):
        """What moved in Okta since an idp-mode plan was made. ours: name keys of the groups this
        plan's journal already made."""
        expected = plan["idp"]["provider"]
        app = self.app(expected["pk"])
        if app is None:
            return [f"Okta app {expected['pk']} is gone"]
        label = app.get("label") or app["id"]
        reasons = []
        connection = self.connection(app["id"]) or {}
        if connection.get("status") != "ENABLED" or not same_url(connection.get("baseUrl"), expected["url"]):
            reasons.append(f"Okta app {label!r} no longer provisions {expected['url']}")
        if "GROUP_PUSH" not in (app.get("features") or []):
            reasons.append(f"Group Push is off in Okta app {label!r}")
        live = {iam.name_key(g["name"]) for g in self.groups()}
        for name in plan["expected"]["idp_absent_names"]:
            if iam.name_key(name) in live and iam.name_key(name) not in ours:
                reasons.append(f"an Okta group named {name!r} now exists")
        return reasons


def connect_from_env(environ, sync_timeout=120.0, **http_kwargs):
    """The Okta client from OKTA_ORG_URL and OKTA_API_TOKEN (or OKTA_ACCESS_TOKEN), and OKTA_APP_ID
    if set; a one-line UsageProblem naming what is missing."""
    if not (environ.get("OKTA_ORG_URL") or "").strip():
        raise UsageProblem("no Okta org URL; set OKTA_ORG_URL (e.g. https://acme.okta.com)")
    return OktaClient.connect(environ.get("OKTA_ORG_URL"), environ.get("OKTA_API_TOKEN"), environ.get("OKTA_ACCESS_TOKEN"),
                              environ.get("OKTA_APP_ID"), sync_timeout=sync_timeout, **http_kwargs)
