"""The Microsoft Entra ID adapter: a Microsoft Graph v1.0 client (groups, their members, the
enterprise application that provisions Cloudflare, its app role assignments, its synchronization
job, provisionOnDemand, the provisioning log) and what the IdP-managed path reads of it.

How the protocol maps onto Entra (decisions; `base.IdP` has the words):
- provider: the service principal of the enterprise application whose synchronization job
  provisions this account. Graph v1.0 will not return the Tenant URL (synchronization secrets are
  PUT-only), so it is found by what it provisions: the application that this account's `CF-<id>`
  groups are assigned to and that has a synchronization job. `ENTRA_APP` (its object id, app id
  or display name) names it where that is ambiguous; where none of this account's CF- groups is
  assigned anywhere, the one application any CF- group is assigned to. Its "url" is this
  account's SCIM endpoint, which is what the assignment shows, not what Graph says.
- scope: the groups assigned to the application (the job syncs "only assigned users and groups");
  set_scope adds and removes app role assignments (POST / DELETE appRoleAssignedTo).
- push: provisionOnDemand for the group with its members, five a request (the documented most),
  paced at 5 requests per 10 s (the documented limit), up to ON_DEMAND_MEMBERS members; a larger
  group's other members arrive with the job's next cycle (every 40 minutes), which the log says.
- pushed_id: None. Graph exposes no link to the Cloudflare group; Entra creates it with
  externalId = the group's id, by which the engine finds it.
- unpush_calls: []. On-demand provisioning cannot delete, and nothing else in Graph makes Entra
  delete a group in Cloudflare now: the next cycle does, once the group is deleted or unassigned.
- cleanup_victims: the groups leaving the scope, since the next cycle deletes them in Cloudflare.
- group_pushes: provisioning log entries of the group (`/auditLogs/provisioning`).

Facts and where they come from (Microsoft Graph v1.0 OpenAPI: microsoftgraph/msgraph-metadata,
openapi/v1.0/openapi.yaml, and its CSDL clean_v10_metadata/cleanMetadata.xml at commit
f54f11b60956ea7b185ca0447b2b80805836ec7b; the learn.microsoft.com pages named):
- token: POST {login}/{tenant}/oauth2/v2.0/token, grant_type=client_credentials, scope
  https://graph.microsoft.com/.default; errors `{"error", "error_description": "AADSTS..."}`
  (7000215 wrong secret, 700016 unknown client, 90002 unknown tenant) (identity platform docs).
- groups: `$filter=startswith(displayName,'CF-')` (not used: it misses names that start with a
  space), `displayName eq '...'` (string literals quote
  ' as ''), `$select`, `$top` up to 999, `@odata.nextLink` paging; POST /groups needs
  displayName, mailEnabled, mailNickname, securityEnabled; display names need not be unique;
  `members@odata.bind` adds at most 20 members a request (group-post-members); DELETE
  /groups/{id}/members/{id}/$ref removes one.
- appRoleAssignedTo: POST {principalId, resourceId, appRoleId} (201), DELETE by assignment id;
  /groups/{id}/appRoleAssignments lists a group's (serviceprincipal-post-approleassignedto).
- synchronization: /servicePrincipals/{id}/synchronization/jobs (status.code Active, Paused,
  Quarantine; status.quarantine; status.lastExecution.error; schedule.interval PT40M);
  jobs/{id}/schema for the rule id; provisionOnDemand: one subject (a Group with up to five member
  links), "5 requests per 10 seconds", and nothing is provisioned on demand that a cycle would not
  provision (synchronization-synchronizationjob-provisionondemand, Entra's provision-on-demand).
- provisioning log: /auditLogs/provisioning, `$filter` on servicePrincipal/id and sourceIdentity/id.
- permissions (application): Group.ReadWrite.All, AppRoleAssignment.ReadWrite.All,
  Application.Read.All, Synchronization.ReadWrite.All, AuditLog.Read.All (PERMISSIONS below).
- throttling: 429 with Retry-After (Graph throttling guidance); the shared HTTP layer waits it out.
- Entra's default SCIM mappings: users userPrincipalName -> userName, mail -> emails[work],
  mailNickname -> externalId; groups objectId -> externalId, displayName, members.

Documentation only (not run here against a real tenant): the provisioning log's delay and
filters, the on-demand limits and what on-demand does with members who left, that a cycle deletes
a group leaving the scope in Cloudflare, the quarantine shape, the 40-minute cycle, and every
AADSTS and Graph error text. The sandbox (`migrate/sandbox/entra`) follows these pages.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

import requests

from .. import iam
from ..errors import EntraError, UsageProblem, VgmigrateError
from ..http import HttpClient, NetworkError, RateLimiter, RetriesExhausted, json_answer
from ..names import looks_like_virtual_group
from .base import AdapterDefaults

log = logging.getLogger("vgmigrate.idp")

GRAPH_URL = "https://graph.microsoft.com/v1.0"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
PAGE_SIZE = 999  # Graph's most for groups, members and app role assignments
BIND_BATCH = 20  # members@odata.bind: at most 20 a request
ON_DEMAND_BATCH = 5  # provisionOnDemand: one group with at most five members
ON_DEMAND_RATE = (5, 10.0)  # provisionOnDemand: 5 requests per 10 seconds
ON_DEMAND_MEMBERS = 100  # beyond this, a push leaves the rest to the next cycle (20 requests, ~40 s)
CYCLE_MINUTES = 40
REFRESH_MARGIN = 300.0  # fetch a new token this many seconds before the old one expires
DEFAULT_ACCESS_ROLE = "00000000-0000-0000-0000-000000000000"

# The application permission each kind of call needs (admin consented), for the 403's advice.
PERMISSIONS = {
    "groups": "Group.ReadWrite.All",
    "assignments": "AppRoleAssignment.ReadWrite.All",
    "applications": "Application.Read.All",
    "synchronization": "Synchronization.ReadWrite.All",
    "logs": "AuditLog.Read.All",
}
REQUIRED_PERMISSIONS = tuple(PERMISSIONS.values())


class EntraRetriesExhausted(RetriesExhausted, EntraError):
    RATE_ADVICE = "Microsoft Graph kept answering 429 (throttled): wait a few minutes and run the command again"
    TROUBLE_ADVICE = "Microsoft Graph is having trouble: wait a few minutes and run the command again"

    def __init__(self, status, errors=(), messages=(), ray=None, method=None, path=None, attempts=1):
        self.attempts = attempts
        EntraError.__init__(self, status, errors, messages, ray, method, path)

    def _describe(self):
        advice = self.RATE_ADVICE if self.status == 429 else self.TROUBLE_ADVICE
        return f"{EntraError._describe(self)}; gave up after {self.attempts} attempts: {advice}"


def _segment(value):
    return quote(str(value), safe="")


def odata_literal(text):
    """A string literal for `$filter`: single quotes, a quote doubled."""
    return "'" + str(text).replace("'", "''") + "'"


def _base_url(url, variable, default):
    url = (url or "").strip() or default
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageProblem(f"{variable} {url[:60]!r} is not an http(s) URL; leave it unset for Microsoft's own ({default})")
    return url.rstrip("/")


def marker_of(description):
    """{"vgmigrate": marker} from a group description vgmigrate wrote, else {}."""
    try:
        parsed = json.loads(description or "")
    except ValueError:
        return {}
    return {"vgmigrate": parsed["vgmigrate"]} if isinstance(parsed, dict) and "vgmigrate" in parsed else {}


def mail_nickname(name):
    """Graph needs a mailNickname even for a security group: ASCII letters and digits of the name."""
    return (re.sub(r"[^A-Za-z0-9]", "", name) or "group")[:56]


class _Token:
    """The access token: fetched with the client credentials, refreshed before it expires; or given."""

    def __init__(self, login_url, tenant, client_id, secret, access_token, timeout=30.0, clock=time.monotonic):
        self.login_url, self.tenant, self.client_id, self._secret = login_url, tenant, client_id, secret
        self.timeout, self._clock = timeout, clock
        self._lock = threading.Lock()
        self._value, self._expires = access_token, float("inf")
        self.seen = [access_token] if access_token else []  # every token, for redaction

    @property
    def refreshable(self):
        return bool(self._secret)

    def get(self, force=False):
        with self._lock:
            if self._secret and (force or self._value is None or self._clock() >= self._expires - REFRESH_MARGIN):
                self._fetch()
            return self._value

    def _fetch(self):
        path = f"/{_segment(self.tenant)}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret, "scope": SCOPE}
        try:
            response = requests.post(self.login_url + path, data=form, timeout=self.timeout)
        except requests.RequestException as err:
            raise NetworkError(f"POST {path}: could not reach {urlsplit(self.login_url).netloc} ({type(err).__name__}); "
                               "check the network and ENTRA_LOGIN_URL, then run again") from None
        if response.status_code != 200:
            err = EntraError.from_response(response, "POST", path, redact=self.redact)
            err.advice = _token_advice(err)
            raise EntraError(err.status, err.errors, (), None, "POST", path, advice=err.advice)
        try:
            body = response.json()
            self._value = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 3599)
        except (ValueError, KeyError, TypeError):
            raise VgmigrateError(f"the answer of {self.login_url}{path} was not a token: is ENTRA_LOGIN_URL the Entra sign-in address?") from None
        self._expires = self._clock() + lifetime
        self.seen.append(self._value)

    def redact(self, text):
        text = str(text)
        for secret in [self._secret, *self.seen]:
            if secret:
                text = text.replace(secret, "***")
        return text


def token_roles(token):
    """The application permissions an Entra access token carries (its JWT `roles` claim; the
    signature is not checked: this only says what to expect), or None if it is not a JWT."""
    try:
        payload = str(token).split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return sorted(str(r) for r in roles) if isinstance(roles, list) else []


def _token_advice(err):
    text = " ".join(str(e.get("message") if isinstance(e, dict) else e) for e in err.errors)
    if "AADSTS7000215" in text or "AADSTS7000222" in text:
        return "ENTRA_CLIENT_SECRET is wrong or expired: add a client secret to the app registration (Certificates & secrets), set ENTRA_CLIENT_SECRET to its value (not its id), then run again"
    if "AADSTS700016" in text:
        return "ENTRA_CLIENT_ID names no application in this tenant: set it to the app registration's Application (client) ID"
    if "AADSTS90002" in text or "AADSTS900023" in text:
        return "ENTRA_TENANT_ID names no tenant: set it to the Directory (tenant) ID of your Entra tenant"
    return "check ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET, then run again"


class _TokenAuth(requests.auth.AuthBase):
    def __init__(self, token):
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token.get()}"
        return request

    def __repr__(self):
        return "<TokenAuth ***>"


class _GraphHttp(HttpClient):
    """The shared HttpClient with a token that changes: redaction covers every token and the secret."""

    def __init__(self, base_url, token, **kwargs):
        self._token_source = token
        # The token is fetched on the first call, not here; the placeholder is never sent.
        super().__init__(base_url, secrets.token_urlsafe(24), **kwargs)
        self.session.auth = _TokenAuth(token)

    def redact(self, text):
        return self._token_source.redact(super().redact(text))


class EntraClient(AdapterDefaults):
    """The Graph calls vgmigrate makes. Thread-safe (one HttpClient underneath)."""

    name = "Entra ID"
    source = "entra"
    links_groups = False  # Graph shows no link to the Cloudflare group: it is found by externalId

    def __init__(self, http, token, app=None, sync_timeout=120.0, sleep=time.sleep, clock=time.monotonic, on_demand_rate=ON_DEMAND_RATE):
        self.http = http
        self.token = token
        self.app = (app or "").strip() or None
        self.sync_timeout = sync_timeout
        self._local = threading.local()
        self._on_demand = RateLimiter(*on_demand_rate, clock=clock, sleep=sleep)
        self._jobs = {}  # provider -> (job id, rule id)

    @classmethod
    def connect(cls, graph_url=None, tenant_id=None, client_id=None, client_secret=None, access_token=None,
                login_url=None, app=None, sync_timeout=120.0, on_demand_rate=ON_DEMAND_RATE, **http_kwargs) -> "EntraClient":
        graph = _base_url(graph_url, "ENTRA_GRAPH_URL", GRAPH_URL)
        login = _base_url(login_url, "ENTRA_LOGIN_URL", LOGIN_URL)
        given = (access_token or "").strip() or None
        if not given and not all((tenant_id, client_id, client_secret)):
            raise UsageProblem("no Entra credentials; set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_ACCESS_TOKEN)")
        token = _Token(login, (tenant_id or "").strip(), (client_id or "").strip(), None if given else client_secret.strip(), given)
        sleep = http_kwargs.get("sleep", time.sleep)
        clock = http_kwargs.pop("clock", time.monotonic)
        if "limiter" not in http_kwargs:
            # Graph's limits differ per service and tenant and are not published as one number: obey its 429s.
            http_kwargs["limiter"] = RateLimiter(limit=None, clock=clock, sleep=sleep)
        http = _GraphHttp(graph, token, base_url_variable="ENTRA_GRAPH_URL", api_error=EntraError,
                          retries_error=EntraRetriesExhausted, **http_kwargs)
        return cls(http, token, app=app, sync_timeout=sync_timeout, sleep=sleep, clock=clock, on_demand_rate=on_demand_rate)

    def __repr__(self):
        return f"EntraClient({self.http.base_url!r})"

    # -- transport -----------------------------------------------------------------------------

    def _call(self, method, path, params=None, json=None, *, need="groups", missing_ok=False):
        """The JSON body of a 2xx answer (None for 204); None for a 404 when `missing_ok`; else EntraError."""
        response = self.http.request(method, path, params=params, json=json)
        if response.status_code == 401 and self.token.refreshable:
            self.token.get(force=True)  # expired or revoked early: one new token, then once more
            response = self.http.request(method, path, params=params, json=json)
        self._local.status = response.status_code
        self._local.request_id = response.headers.get("request-id")
        if missing_ok and response.status_code == 404:
            return None
        if not 200 <= response.status_code < 300:
            err = EntraError.from_response(response, method, path, redact=self.http.redact, advice=self._advice(response, need))
            err.permission = PERMISSIONS[need]  # what a 403 means this call lacks
            raise err
        return json_answer(response, method, path, EntraError, self.http.redact, "is ENTRA_GRAPH_URL the Microsoft Graph v1.0 address?")

    def _advice(self, response, need):
        if response.status_code == 403:
            permission = PERMISSIONS[need]
            return (f"the app registration lacks the application permission {permission}: add it under API permissions "
                    "(Microsoft Graph, Application), grant admin consent, then run again")
        if response.status_code == 401:
            return "the Entra token was refused (expired or for another resource): check the ENTRA_ variables, then run again"
        return ""

    def _pages(self, path, params=None, *, need="groups", limit=None):
        """Every item of a list, following `@odata.nextLink` (an absolute URL on the same base)."""
        seen = 0
        body = self._call("GET", path, params, need=need)
        while True:
            for item in (body or {}).get("value") or []:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            following = (body or {}).get("@odata.nextLink")
            if not following:
                return
            if not following.startswith(self.http.base_url + "/"):
                raise EntraError(0, [f"Graph's next page {following[:80]!r} is not under ENTRA_GRAPH_URL"], method="GET", path=path)
            body = self._call("GET", following[len(self.http.base_url):], need=need)

    # -- paths (what the journal records) ------------------------------------------------------

    def groups_path(self):
        return "/groups"

    def group_path(self, pk):
        return f"/groups/{_segment(pk)}"

    def member_path(self, pk, user):
        return f"/groups/{_segment(pk)}/members/{_segment(user)}/$ref"

    def scope_path(self, provider):
        return f"/servicePrincipals/{_segment(provider)}/appRoleAssignedTo"

    def push_path(self, provider):
        job, _ = self._job_ids(provider)
        return f"/servicePrincipals/{_segment(provider)}/synchronization/jobs/{_segment(job)}/provisionOnDemand"

    # -- token check ---------------------------------------------------------------------------

    def me(self):
        """A cheap read that proves the token and its group permission."""
        self._call("GET", "/groups", {"$top": 1, "$select": "id"})
        return {"tenant": self.token.tenant or None}

    # -- groups --------------------------------------------------------------------------------

    def _group(self, raw, include_users):
        group = {"pk": raw["id"], "name": raw.get("displayName") or "", "attributes": marker_of(raw.get("description"))}
        if include_users is not None:
            users = self.members(raw["id"])
            group["users"] = [u["pk"] for u in users]
            if include_users:
                group["users_obj"] = users
        return group

    def members(self, pk):
        """The group's direct user members as [{"pk", "email", "username"}] (email: mail, else the UPN)."""
        params = {"$select": "id,mail,userPrincipalName", "$top": PAGE_SIZE}
        out = []
        for item in self._pages(f"{self.group_path(pk)}/members", params):
            if item.get("@odata.type", "#microsoft.graph.user") != "#microsoft.graph.user":
                continue  # nested groups, devices, service principals: Entra does not provision them through a group
            upn = item.get("userPrincipalName") or ""
            out.append({"pk": item["id"], "email": item.get("mail") or upn, "username": upn})
        return out

    def cf_groups(self, include_users=True):
        """Groups named as virtual groups (names.looks_like_virtual_group). Every group's name is
        read and checked here: Graph's `startswith(displayName,'CF-')` misses the variants seen in
        the wild that start with a space (found by the property tests: a migration that leaves
        such a group behind keeps granting its role after the cutover)."""
        params = {"$select": "id,displayName,description", "$top": PAGE_SIZE}
        return [self._group(g, include_users) for g in self._pages(self.groups_path(), params)
                if looks_like_virtual_group(str(g.get("displayName") or ""))]

    def group(self, pk, include_users=True):
        raw = self._call("GET", self.group_path(pk), {"$select": "id,displayName,description"}, missing_ok=True)
        return None if raw is None else self._group(raw, include_users)

    def group_by_name(self, name, include_users=True):
        """The group named exactly `name`; of several (Entra allows that), one vgmigrate made first."""
        params = {"$filter": f"displayName eq {odata_literal(name)}", "$select": "id,displayName,description", "$top": PAGE_SIZE}
        found = [g for g in self._pages(self.groups_path(), params) if g.get("displayName") == name]
        if not found:
            return None
        found.sort(key=lambda g: not marker_of(g.get("description")))
        return self._group(found[0], include_users)

    def group_names(self):
        return [g.get("displayName") or "" for g in self._pages(self.groups_path(), {"$select": "displayName", "$top": PAGE_SIZE})]

    def create_group(self, name, users=(), attributes=None):
        """A security group with the first 20 members in the create, the rest added 20 a request."""
        users = list(dict.fromkeys(users))
        body = {"displayName": name, "mailEnabled": False, "mailNickname": mail_nickname(name), "securityEnabled": True,
                "members@odata.bind": [self._ref(u) for u in users[:BIND_BATCH]]}
        if attributes:
            body["description"] = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
        raw = self._call("POST", self.groups_path(), json=body)
        self._add(raw["id"], users[BIND_BATCH:])
        return {"pk": raw["id"], "name": raw.get("displayName") or name, "attributes": marker_of(raw.get("description")), "users": users}

    def _ref(self, user):
        return f"{GRAPH_URL}/directoryObjects/{user}"

    def _add(self, pk, users):
        for start in range(0, len(users), BIND_BATCH):
            self._call("PATCH", self.group_path(pk), json={"members@odata.bind": [self._ref(u) for u in users[start:start + BIND_BATCH]]})

    def set_members(self, pk, users):
        """Exactly these members: read, then add and remove only the difference (safe to resend)."""
        have = {u["pk"] for u in self.members(pk)}
        want = list(dict.fromkeys(str(u) for u in users))
        self._add(pk, [u for u in want if u not in have])
        for user in sorted(have - set(want)):
            self._call("DELETE", self.member_path(pk, user), missing_ok=True)

    def delete_group(self, pk):
        """Entra deletes its Cloudflare group at the next cycle."""
        return self._call("DELETE", self.group_path(pk))

    # -- the enterprise application ------------------------------------------------------------

    def service_principal(self, pk):
        return self._call("GET", f"/servicePrincipals/{_segment(pk)}", {"$select": "id,appId,displayName,appRoles"},
                          need="applications", missing_ok=True)

    def named_application(self, name):
        """The service principal ENTRA_APP names (object id, app id or display name), else None."""
        for field in ("id", "appId", "displayName"):
            params = {"$filter": f"{field} eq {odata_literal(name)}", "$select": "id,appId,displayName,appRoles"}
            try:
                found = list(self._pages("/servicePrincipals", params, need="applications"))
            except EntraError as err:
                if err.status == 400:  # a display name is not a GUID: Graph refuses `id eq` on it
                    continue
                raise
            if found:
                return found[0]
        return None

    def assignments(self, provider):
        return list(self._pages(self.scope_path(provider), {"$top": PAGE_SIZE}, need="assignments"))

    def group_assignments(self, group_pk):
        return list(self._pages(f"{self.group_path(group_pk)}/appRoleAssignments", need="assignments"))

    def jobs(self, provider):
        body = self._call("GET", f"/servicePrincipals/{_segment(provider)}/synchronization/jobs", need="synchronization") or {}
        return list(body.get("value") or [])

    def job(self, provider):
        """The application's synchronization job, or None."""
        jobs = self.jobs(provider)
        return jobs[0] if jobs else None

    def _job_ids(self, provider):
        if provider not in self._jobs:
            job = self.job(provider)
            if job is None:
                raise VgmigrateError(f"Entra enterprise application {provider} has no provisioning job: set its Provisioning Mode to Automatic "
                                     "with Cloudflare's SCIM endpoint as Tenant URL (`vgmigrate idp check` shows the set-up)")
            path = f"/servicePrincipals/{_segment(provider)}/synchronization/jobs/{_segment(job['id'])}/schema"
            rules = (self._call("GET", path, need="synchronization") or {}).get("synchronizationRules") or []
            if not rules:
                raise VgmigrateError(f"the provisioning job of Entra application {provider} has no synchronization rule; open its Provisioning page once and save it")
            self._jobs[provider] = (job["id"], rules[0]["id"])
        return self._jobs[provider]

    def find_provider(self, account_id):
        """(service principal, job) of the application provisioning this account; a one-line error if none or several."""
        if self.app:
            sp = self.named_application(self.app)
            if sp is None:
                raise VgmigrateError(f"ENTRA_APP {self.app!r} names no enterprise application in this tenant; set it to the "
                                     "application's object id, application id or display name")
            job = self.job(sp["id"])
            if job is None:
                raise VgmigrateError(f"Entra application {sp['displayName']!r} has no provisioning job: set its Provisioning Mode to Automatic")
            return sp, job
        # This account's CF- groups first; if none is assigned anywhere (it may have none with
        # members), any CF- group: the one application provisioning CF- groups in this tenant.
        groups = self.cf_groups(include_users=None)
        ours = [g for g in groups if account_id.lower() in g["name"].lower()]
        found = []
        for candidates in (ours, [g for g in groups if g not in ours]):
            votes = {}
            for group in candidates:
                for assignment in self.group_assignments(group["pk"]):
                    votes.setdefault(assignment["resourceId"], assignment.get("resourceDisplayName"))
            found = [(pk, name) for pk, name in votes.items() if self.jobs(pk)]
            if found:
                break
        if not found:
            raise VgmigrateError(f"no Entra enterprise application with a provisioning job has this account's CF-{account_id} groups "
                                 "assigned; assign them (or set ENTRA_APP to the application's name), then run again")
        if len(found) > 1:
            names = ", ".join(sorted(str(n) for _, n in found))
            raise VgmigrateError(f"several Entra applications provision this account's CF- groups ({names}); set ENTRA_APP to the one "
                                 "whose Tenant URL is this account's SCIM endpoint")
        sp = self.service_principal(found[0][0])
        return sp, self.job(sp["id"])

    # -- scope ---------------------------------------------------------------------------------

    def scope_of(self, provider):
        return list(dict.fromkeys(a["principalId"] for a in self.assignments(provider) if a.get("principalType") == "Group"))

    def _role(self, provider, assignments):
        """The app role group assignments use: the one the assigned groups have, else the app's
        first role for users, else Default Access."""
        used = [a["appRoleId"] for a in assignments if a.get("principalType") == "Group"]
        if used:
            return max(set(used), key=used.count)
        roles = (self.service_principal(provider) or {}).get("appRoles") or []
        enabled = [r["id"] for r in roles if r.get("isEnabled", True) and "User" in (r.get("allowedMemberTypes") or [])]
        return enabled[0] if enabled else DEFAULT_ACCESS_ROLE

    def set_scope(self, provider, groups):
        """Assign exactly these groups (by pk): add the missing assignments, remove the others."""
        assignments = self.assignments(provider)
        want = list(dict.fromkeys(str(g) for g in groups))
        have = {a["principalId"] for a in assignments if a.get("principalType") == "Group"}
        role = self._role(provider, assignments)
        for pk in want:
            if pk not in have:
                self._call("POST", self.scope_path(provider), json={"principalId": pk, "resourceId": provider, "appRoleId": role},
                           need="assignments")
        for a in assignments:
            if a.get("principalType") == "Group" and a["principalId"] not in want:
                self._call("DELETE", f"{self.scope_path(provider)}/{_segment(a['id'])}", need="assignments", missing_ok=True)

    def cleanup_victims(self, provider, groups, leaving=()):
        """Names of assigned groups the new scope leaves out (not being deleted anyway): Entra's next
        cycle deletes their Cloudflare groups."""
        keep = {str(g) for g in groups} | {str(g) for g in leaving}
        return sorted(a.get("principalDisplayName") or a["principalId"] for a in self.assignments(provider)
                      if a.get("principalType") == "Group" and a["principalId"] not in keep)

    # -- pushes --------------------------------------------------------------------------------

    def push(self, provider, group_pk):
        """provisionOnDemand for the group and up to ON_DEMAND_MEMBERS members, five a request at
        the documented pace. Returns the problems Graph reported at once (strings)."""
        job, rule = self._job_ids(provider)
        users = [u["pk"] for u in self.members(group_pk)]
        batches = [users[i:i + ON_DEMAND_BATCH] for i in range(0, min(len(users), ON_DEMAND_MEMBERS), ON_DEMAND_BATCH)] or [[]]
        if len(users) > ON_DEMAND_MEMBERS:
            log.warning("Entra ID provisions %d members of group %s on demand; the other %d arrive with the job's next cycle "
                        "(every %d minutes)", ON_DEMAND_MEMBERS, group_pk, len(users) - ON_DEMAND_MEMBERS, CYCLE_MINUTES)
        problems = []
        for batch in batches:
            subject = {"objectId": group_pk, "objectTypeName": "Group",
                       "links": {"members": [{"objectId": u, "objectTypeName": "User"} for u in batch]}}
            self._on_demand.acquire()
            try:
                answer = self._call("POST", self.push_path(provider), json={"parameters": [{"subjects": [subject], "ruleId": rule}]},
                                    need="synchronization") or {}
            finally:
                self._on_demand.done(0.0)
            problems += _on_demand_problems(answer)
        return problems

    def pushed_id(self, provider, group_pk):
        return None  # Graph shows no link; the engine finds the group by externalId = group_pk

    def unpush_calls(self, provider, group_pk):
        return []  # nothing in Graph deletes a provisioned group now; the next cycle does

    def provisioning_log(self, provider, group_pk=None, limit=200):
        clauses = [f"servicePrincipal/id eq {odata_literal(provider)}"]
        if group_pk is not None:
            clauses.append(f"sourceIdentity/id eq {odata_literal(group_pk)}")
        return list(self._pages("/auditLogs/provisioning", {"$filter": " and ".join(clauses), "$top": 100}, need="logs", limit=limit))

    def group_pushes(self, provider, group_pk):
        return {e["id"] for e in self.provisioning_log(provider, group_pk)}

    def group_pushes_done(self, provider, group_pk, before):
        """Has Entra logged provisioning this group since `before` (a cycle or an on-demand run)?"""
        return any(e["id"] not in before for e in self.provisioning_log(provider, group_pk))

    def cycle_estimate(self, job):
        """Minutes until the job's next cycle, from its schedule and last run (None if unknown)."""
        began = (((job or {}).get("status") or {}).get("lastExecution") or {}).get("timeBegan")
        interval = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", str(((job or {}).get("schedule") or {}).get("interval") or ""))
        if not began or not interval:
            return None
        minutes = int(interval.group(1) or 0) * 60 + int(interval.group(2) or 0)
        try:
            then = datetime.fromisoformat(began.replace("Z", "+00:00"))
        except ValueError:
            return None
        left = minutes - (datetime.now(timezone.utc) - then).total_seconds() / 60
        return max(0, round(left))

    # -- the IdP-managed path ------------------------------------------------------------------

    def job_problem(self, job):
        """A one-line reason the job cannot provision now, or None."""
        status = (job or {}).get("status") or {}
        if status.get("code") == "Quarantine" or status.get("quarantine"):
            error = ((status.get("quarantine") or {}).get("error") or {}).get("message") or (status.get("quarantine") or {}).get("reason")
            return (f"its provisioning job is in quarantine ({error}): fix the Tenant URL and Secret Token on the application's "
                    "Provisioning page, restart provisioning, then run again")
        if status.get("code") == "Paused" or ((job or {}).get("schedule") or {}).get("state") in ("Disabled", "Paused"):
            return "its provisioning job is stopped: set Provisioning Status to On, then run again"
        return None

    def plan_facts(self, cloudflare):
        scim_url = cloudflare.scim_url()
        sp, job = self.find_provider(cloudflare.account_id)
        problem = self.job_problem(job)
        if problem:
            raise VgmigrateError(f"Entra application {sp['displayName']!r}: {problem}")
        scim_names = {iam.email_key(u.get("userName")) for u in cloudflare.scim_users()}
        users = {}
        for pk in self.scope_of(sp["id"]):
            for user in self.members(pk):
                for key in {iam.email_key(user["email"]), iam.email_key(user["username"])}:
                    if key in scim_names:
                        users[iam.email_key(user["email"])] = user["pk"]
        return {
            "name": self.name,
            "source": self.source,
            "url": self.http.base_url,
            "version": None,  # Graph has no version to read
            "provider": {"pk": sp["id"], "name": sp.get("displayName"), "url": scim_url, "kind": "enterprise application", "job": job["id"]},
            "scope": "listed",
            "users": users,
            "group_names": self.group_names(),
        }

    def stale_reasons(self, plan, ours):
        """What moved in Entra since an idp-mode plan was made. ours: name keys of the groups this
        plan's journal already made."""
        pk = plan["expected"]["idp_provider"]["pk"]
        name = ((plan.get("idp") or {}).get("provider") or {}).get("name") or pk
        sp = self.service_principal(pk)
        if sp is None:
            return [f"Entra application {name!r} is gone"]
        reasons = []
        job = self.job(sp["id"])
        if job is None:
            reasons.append(f"Entra application {sp['displayName']!r} has no provisioning job any more")
        elif self.job_problem(job):
            reasons.append(f"Entra application {sp['displayName']!r}: {self.job_problem(job)}")
        live = {iam.name_key(n) for n in self.group_names()}
        for planned in plan["expected"]["idp_absent_names"]:
            if iam.name_key(planned) in live and iam.name_key(planned) not in ours:
                reasons.append(f"an Entra group named {planned!r} now exists")
        return reasons


def _on_demand_problems(answer):
    """Failures in provisionOnDemand's answer (its `value` is a JSON string of steps)."""
    try:
        detail = json.loads(answer.get("value") or "{}")
    except (ValueError, AttributeError):
        return []
    steps = detail.get("provisioningSteps") or [] if isinstance(detail, dict) else []
    return [f"{s.get('name')}: {s.get('description') or s.get('status')}" for s in steps
            if isinstance(s, dict) and str(s.get("status")).lower() in ("failure", "failed")]


def connect_from_env(environ, sync_timeout=120.0, **http_kwargs):
    """The client the ENTRA_ variables describe; a UsageProblem naming the first one missing."""
    get = lambda name: (environ.get(name) or "").strip()  # noqa: E731
    if not get("ENTRA_ACCESS_TOKEN"):
        for name in ("ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET"):
            if not get(name):
                raise UsageProblem(f"{name} is not set; set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET "
                                   "(an app registration's client credentials), or ENTRA_ACCESS_TOKEN")
    return EntraClient.connect(get("ENTRA_GRAPH_URL") or None, get("ENTRA_TENANT_ID"), get("ENTRA_CLIENT_ID"),
                               get("ENTRA_CLIENT_SECRET") or None, get("ENTRA_ACCESS_TOKEN") or None,
                               login_url=get("ENTRA_LOGIN_URL") or None, app=get("ENTRA_APP") or None,
                               sync_timeout=sync_timeout, on_demand_rate=on_demand_rate(get("ENTRA_ON_DEMAND_RATE")), **http_kwargs)


def on_demand_rate(text):
    """(requests, seconds) from "5/10"; Graph's documented limit when unset. The sandbox, whose
    time runs faster, sets it to its own limit."""
    if not text:
        return ON_DEMAND_RATE
    count, _, seconds = text.partition("/")
    try:
        rate = (int(count), float(seconds))
    except ValueError:
        rate = (0, 0.0)
    if rate[0] < 1 or rate[1] <= 0:
        raise UsageProblem(f"ENTRA_ON_DEMAND_RATE {text[:20]!r} is not REQUESTS/SECONDS (e.g. 5/10); unset it for Graph's 5 per 10 s")
    return rate


__all__ = ["EntraClient", "connect_from_env", "PERMISSIONS", "REQUIRED_PERMISSIONS"]
