"""The authentik emulator: response shapes against authentik's own schema (the shared
openapi-subset.json), its API behaviour, and the SCIM pushes it makes into the Cloudflare sandbox."""

import json
import os
from pathlib import Path

import pytest
import requests

from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.seeds import demo_seed

SPEC_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "authentik" / "openapi-subset.json"
SPEC_URI = "urn:authentik:openapi-subset"
GROUP = "authentik.core.models.Group"
USER = "authentik.core.models.User"
ACCT = "34c902bf18fbfbb0ab1e8f6a68c3c00b"
CF_ADMIN = f"CF-{ACCT} - Administrator"


# ---- schema validation (the pattern of tests/test_contract.py) ----------------------------------------


@pytest.fixture(scope="module")
def spec():
    if not SPEC_PATH.exists():
        # A local checkout without the shared reference may skip; in CI a missing schema must not
        # silently turn the contract into a pass.
        why = f"authentik OpenAPI subset not found at {SPEC_PATH} (the contract tests validate the emulator against it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {why}: check out the shared reference next to the repository", pytrace=False)
        pytest.skip(why)
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    document = _nullable_all_of(json.loads(SPEC_PATH.read_text()))
    return document, Registry().with_resource(SPEC_URI, Resource.from_contents(document, default_specification=DRAFT4))


def _nullable_all_of(node):
    """drf-spectacular writes a nullable related object as `{allOf: [$ref], nullable: true}`; the
    validator applies `nullable` only next to `type`, so null would fail the $ref. Spell it out."""
    if isinstance(node, list):
        return [_nullable_all_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_all_of(value) for key, value in node.items()}
    if node.get("nullable") is True and "allOf" in node and "type" not in node:
        return {"anyOf": [{"allOf": node.pop("allOf")}, {"enum": [None]}], **{k: v for k, v in node.items() if k != "nullable"}}
    return node


def _pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validate(spec, method, spec_path, response):
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    document, registry = spec
    status = str(response.status_code)
    declared = document["paths"][spec_path][method.lower()]["responses"]
    assert status in declared, f"{method} {spec_path} answered {status}, schema declares {sorted(declared)}: {response.text[:300]}"
    where = ["paths", spec_path, method.lower(), "responses", status]
    entry = declared[status]
    if "$ref" in entry:  # a shared error response (#/components/responses/...)
        where = entry["$ref"].lstrip("#/").split("/")
        entry = document["components"]["responses"][where[-1]]
    content = entry.get("content")
    if not content:
        assert response.content == b"", f"{method} {spec_path} {status} should have no body"
        return
    ref = f"{SPEC_URI}#/{_pointer(*where, 'content', 'application/json', 'schema')}"
    validator = OAS30Validator({"$ref": ref}, registry=registry, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
    assert not errors, f"{method} {spec_path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def validate_error(spec, name, response):
    """Error bodies against the shared GenericError / ValidationError components."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    document, registry = spec
    validator = OAS30Validator({"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=registry, format_checker=oas30_format_checker)
    errors = list(validator.iter_errors(response.json()))
    assert not errors, f"{name}: {errors[0].message}"


# ---- fixtures ---------------------------------------------------------------------------------------


class Api:
    def __init__(self, ak, cf):
        self.ak, self.cf = ak, cf
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {ak.token}"

    def __call__(self, method, path, settle=True, **kwargs):
        """One request; after a write, wait for the pushes it queued (these tests look at what is
        pushed, not when: tests/test_authentik_worker.py is about when)."""
        response = self.session.request(method, self.ak.base_url + path, timeout=10, **kwargs)
        if method != "GET" and settle:
            self.ak.settle()
        return response

    def get(self, path, **params):
        response = self("GET", path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def group(self, name):
        return next(g for g in self.ak.state.groups.values() if g["name"] == name)

    def user(self, username):
        return next(u for u in self.ak.state.users.values() if u["username"] == username)

    def sync(self, group_uuid, **extra):
        response = self("POST", f"/providers/scim/{self.ak.provider_id}/sync/object/",
                        json={"sync_object_model": GROUP, "sync_object_id": group_uuid, **extra})
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def link(self, group_uuid):
        return self.ak.state.link_of("group", self.ak.provider_id, group_uuid)

    def scim_calls(self):
        return [(m, p.split("/scim/v2", 1)[1], s) for m, p, s in self.cf.calls if "/scim/v2" in p]

    def latest_task(self):
        return self.ak.state.tasks[-1]


@pytest.fixture
def make():
    """make(**options) -> Api on a fresh Cloudflare sandbox and an authentik sandbox seeded from it."""
    started = []

    def build(**options):
        cf = Sandbox(seed=demo_seed(), rate_limit=None).start()
        started.append(cf)
        # A quick worker: these tests wait for every push (settle), and retries are not their subject.
        ak = AuthentikSandbox(cloudflare=cf, **{"push_delay": (0, 0.02), "retry_backoff": 0.01, **options}).start()
        started.append(ak)
        return Api(ak, cf)

    yield build
    for server in reversed(started):
        server.stop()


@pytest.fixture
def api(make):
    return make()


def _new_group(api, name, members=(), in_scope=True):
    body = {"name": name, "users": [api.user(m)["pk"] for m in members]}
    response = api("POST", "/core/groups/", json=body)
    assert response.status_code == 201, response.text
    uuid = response.json()["pk"]
    if in_scope:  # what the migration does: add the group to the provider's group_filters
        filters = api.get(f"/providers/scim/{api.ak.provider_id}/")["group_filters"]
        assert api("PATCH", f"/providers/scim/{api.ak.provider_id}/", json={"group_filters": filters + [uuid]}).status_code == 200
    return uuid


def _cf_group(api, name):
    state = api.cf.state
    gid = state.user_groups_by_name().get(name)
    return state.user_groups[gid["id"] if isinstance(gid, dict) else gid] if gid else None


def _cf_member_emails(api, group):
    return sorted(api.cf.state.members[m]["email"] for m in group["members"])


BEN, CHLOE = "ben.brandt@acme-corp.example", "chloe.castillo@acme-corp.example"
OUTSIDER = "dana.outsider@acme-corp.example"


# ---- contract -----------------------------------------------------------------------------------------


def _pid(c):
    return c.ak.provider_id


def _some_group(c):
    return c.group(CF_ADMIN)["pk"]


def _group_link_id(c):
    return next(iter(c.ak.state.group_links))


def _user_link_id(c):
    return next(iter(c.ak.state.user_links))


def _schedule_id(c):
    return next(iter(c.ak.state.schedules))


def _task_id(c):
    c("POST", f"/tasks/schedules/{_schedule_id(c)}/send/")
    return c.ak.state.tasks[-1]["message_id"]


def _mapping_id(c):
    return next(iter(c.ak.state.mappings))


P = "/providers/scim/{id}/"
CASES = [
    ("GET", "/admin/version/", lambda c: c("GET", "/admin/version/")),
    ("GET", "/core/groups/", lambda c: c("GET", "/core/groups/", params={"include_children": "true", "include_parents": "true"})),
    ("POST", "/core/groups/", lambda c: c("POST", "/core/groups/", json={"name": "New", "users": [c.user(BEN)["pk"]], "attributes": {"k": 1}})),
    ("GET", "/core/groups/{group_uuid}/", lambda c: c("GET", f"/core/groups/{_some_group(c)}/", params={"include_inherited_roles": "true"})),
    ("PUT", "/core/groups/{group_uuid}/", lambda c: c("PUT", f"/core/groups/{c.group('Contractors')['pk']}/", json={"name": "Contractors"})),
    ("PATCH", "/core/groups/{group_uuid}/", lambda c: c("PATCH", f"/core/groups/{c.group('Contractors')['pk']}/", json={"attributes": {"a": 1}})),
    ("DELETE", "/core/groups/{group_uuid}/", lambda c: c("DELETE", f"/core/groups/{c.group('Contractors')['pk']}/")),
    ("POST", "/core/groups/{group_uuid}/add_user/", lambda c: c("POST", f"/core/groups/{c.group('Contractors')['pk']}/add_user/", json={"pk": 1})),
    ("POST", "/core/groups/{group_uuid}/remove_user/", lambda c: c("POST", f"/core/groups/{c.group('Engineering')['pk']}/remove_user/", json={"pk": c.user(OUTSIDER)["pk"]})),
    ("GET", "/core/users/", lambda c: c("GET", "/core/users/", params={"page_size": 5})),
    ("POST", "/core/users/", lambda c: c("POST", "/core/users/", json={"username": "new@acme-corp.example", "name": "New Person", "email": "new@acme-corp.example"})),
    ("GET", "/core/users/{id}/", lambda c: c("GET", f"/core/users/{c.user(BEN)['pk']}/")),
    ("PUT", "/core/users/{id}/", lambda c: c("PUT", f"/core/users/{c.user(OUTSIDER)['pk']}/", json={"username": OUTSIDER, "name": "Dana O."})),
    ("PATCH", "/core/users/{id}/", lambda c: c("PATCH", f"/core/users/{c.user(OUTSIDER)['pk']}/", json={"attributes": {"team": "x"}})),
    ("DELETE", "/core/users/{id}/", lambda c: c("DELETE", f"/core/users/{c.user(OUTSIDER)['pk']}/")),
    ("GET", "/core/users/me/", lambda c: c("GET", "/core/users/me/")),
    ("GET", "/core/applications/", lambda c: c("GET", "/core/applications/")),
    ("POST", "/core/applications/", lambda c: c("POST", "/core/applications/", json={"name": "Other", "slug": "other"})),
    ("GET", "/core/applications/{slug}/", lambda c: c("GET", "/core/applications/cloudflare-dashboard/")),
    ("PUT", "/core/applications/{slug}/", lambda c: c("PUT", "/core/applications/cloudflare-dashboard/", json={"name": "CF", "slug": "cloudflare-dashboard", "backchannel_providers": [_pid(c)]})),
    ("PATCH", "/core/applications/{slug}/", lambda c: c("PATCH", "/core/applications/cloudflare-dashboard/", json={"meta_description": "d"})),
    ("DELETE", "/core/applications/{slug}/", lambda c: c("DELETE", "/core/applications/cloudflare-dashboard/")),
    ("GET", "/providers/scim/", lambda c: c("GET", "/providers/scim/")),
    ("POST", "/providers/scim/", lambda c: c("POST", "/providers/scim/", json={"name": "Second", "url": "http://127.0.0.1:9/scim/v2", "token": "t"})),
    ("GET", "/providers/scim/{id}/", lambda c: c("GET", P.format(id=_pid(c)))),
    ("PUT", "/providers/scim/{id}/", lambda c: c("PUT", P.format(id=_pid(c)), json={"name": "Cloudflare SCIM", "url": c.ak.state.providers[_pid(c)]["url"]})),
    ("PATCH", "/providers/scim/{id}/", lambda c: c("PATCH", P.format(id=_pid(c)), json={"sync_page_size": 50})),
    ("DELETE", "/providers/scim/{id}/", lambda c: c("DELETE", P.format(id=_pid(c)))),
    ("POST", "/providers/scim/{id}/sync/object/",
     lambda c: c("POST", P.format(id=_pid(c)) + "sync/object/", json={"sync_object_model": GROUP, "sync_object_id": _some_group(c)})),
    ("GET", "/providers/scim/{id}/sync/status/", lambda c: (c.ak.full_sync(), c("GET", P.format(id=_pid(c)) + "sync/status/"))[1]),
    ("GET", "/providers/scim_groups/", lambda c: c("GET", "/providers/scim_groups/", params={"provider__id": _pid(c)})),
    ("POST", "/providers/scim_groups/",
     lambda c: c("POST", "/providers/scim_groups/", json={"scim_id": "x1", "group": c.group("Engineering")["pk"], "provider": _pid(c)})),
    ("GET", "/providers/scim_groups/{id}/", lambda c: c("GET", f"/providers/scim_groups/{_group_link_id(c)}/")),
    ("DELETE", "/providers/scim_groups/{id}/", lambda c: c("DELETE", f"/providers/scim_groups/{_group_link_id(c)}/")),
    ("GET", "/providers/scim_users/", lambda c: c("GET", "/providers/scim_users/", params={"user__username": BEN})),
    ("POST", "/providers/scim_users/", lambda c: c("POST", "/providers/scim_users/", json={"scim_id": "u1", "user": c.user(OUTSIDER)["pk"], "provider": _pid(c)})),
    ("GET", "/providers/scim_users/{id}/", lambda c: c("GET", f"/providers/scim_users/{_user_link_id(c)}/")),
    ("DELETE", "/providers/scim_users/{id}/", lambda c: c("DELETE", f"/providers/scim_users/{_user_link_id(c)}/")),
    ("GET", "/propertymappings/provider/scim/", lambda c: c("GET", "/propertymappings/provider/scim/")),
    ("GET", "/propertymappings/provider/scim/{pm_uuid}/", lambda c: c("GET", f"/propertymappings/provider/scim/{_mapping_id(c)}/")),
    ("GET", "/tasks/schedules/", lambda c: c("GET", "/tasks/schedules/", params={"rel_obj_id": _pid(c)})),
    ("GET", "/tasks/schedules/{id}/", lambda c: c("GET", f"/tasks/schedules/{_schedule_id(c)}/")),
    ("PUT", "/tasks/schedules/{id}/", lambda c: c("PUT", f"/tasks/schedules/{_schedule_id(c)}/", json={"crontab": "0 */6 * * *"})),
    ("PATCH", "/tasks/schedules/{id}/", lambda c: c("PATCH", f"/tasks/schedules/{_schedule_id(c)}/", json={"paused": True})),
    ("POST", "/tasks/schedules/{id}/send/", lambda c: c("POST", f"/tasks/schedules/{_schedule_id(c)}/send/")),
    ("GET", "/tasks/tasks/", lambda c: (c("POST", f"/tasks/schedules/{_schedule_id(c)}/send/"), c("GET", "/tasks/tasks/"))[1]),
    ("GET", "/tasks/tasks/{message_id}/", lambda c: c("GET", f"/tasks/tasks/{_task_id(c)}/")),
    ("POST", "/tasks/tasks/{message_id}/retry/", lambda c: c("POST", f"/tasks/tasks/{_task_id(c)}/retry/")),
]
# Writes of property mappings: the emulator serves only the two managed defaults, read-only.
NOT_SERVED = {("POST", "/propertymappings/provider/scim/"), ("PUT", "/propertymappings/provider/scim/{pm_uuid}/"),
              ("PATCH", "/propertymappings/provider/scim/{pm_uuid}/"), ("DELETE", "/propertymappings/provider/scim/{pm_uuid}/")}


def test_every_operation_in_the_subset_has_a_case(spec):
    document, _ = spec
    in_schema = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops if m in ("get", "post", "put", "patch", "delete")}
    assert in_schema - NOT_SERVED == {(m, p) for m, p, _ in CASES}


@pytest.mark.parametrize("method, spec_path, call", CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_success_bodies_match_the_schema(spec, api, method, spec_path, call):
    response = call(api)
    assert response.status_code < 300, response.text
    validate(spec, method, spec_path, response)


@pytest.mark.parametrize("version", ["2026.8.5", "2025.10.3"])
def test_other_versions_bodies_match_the_2026_5_schema_where_it_still_applies(spec, make, version):
    api = make(version=version)
    validate(spec, "GET", "/providers/scim/", api("GET", "/providers/scim/"))
    validate(spec, "GET", "/core/users/", api("GET", "/core/users/"))
    validate(spec, "POST", "/providers/scim/{id}/sync/object/",
             api("POST", f"/providers/scim/{api.ak.provider_id}/sync/object/", json={"sync_object_model": GROUP, "sync_object_id": _some_group(api)}))


def test_error_bodies_match_the_schema(spec, api):
    bad = requests.get(api.ak.base_url + "/core/groups/", headers={"Authorization": "Bearer wrong"}, timeout=5)
    validate(spec, "GET", "/core/groups/", bad)
    validate(spec, "POST", "/core/groups/", api("POST", "/core/groups/", json={"name": CF_ADMIN}))
    validate_error(spec, "GenericError", api("GET", "/core/groups/", params={"page": 99}))
    validate_error(spec, "GenericError", api("GET", "/core/groups/00000000-0000-4000-8000-000000000000/"))
    response = api("POST", f"/core/groups/{_some_group(api)}/add_user/", json={"pk": 99999})
    assert response.status_code == 404
    validate_error(spec, "GenericError", response)


# ---- API behaviour ---------------------------------------------------------------------------------


def test_search_is_a_case_insensitive_substring_and_unknown_filters_are_ignored(api):
    found = api.get("/core/groups/", search="CF-", include_users="false")
    names = [g["name"] for g in found["results"]]
    assert all("cf-" in n.casefold() for n in names) and len(names) == 8
    assert all(g["users_obj"] is None for g in found["results"])
    prefixed = [n for n in names if n.startswith("CF-")]
    assert len(prefixed) == 7  # the lower-case "cf-..." group is only caught by the client-side check
    everything = api.get("/core/groups/")["pagination"]["count"]
    assert api.get("/core/groups/", name__startswith="CF-")["pagination"]["count"] == everything == len(api.ak.state.groups)
    assert [g["name"] for g in api.get("/core/groups/", name=CF_ADMIN)["results"]] == [CF_ADMIN]
    assert api.get("/core/groups/", name=CF_ADMIN.lower())["results"] == []  # `name` is exact
    members = api.get("/core/groups/", members_by_pk=api.user(OUTSIDER)["pk"])["results"]
    assert [g["name"] for g in members] == ["Engineering"]


def test_akql_search_on_2026_5_is_a_plain_substring_before(make):
    query = 'name startswith "CF-"'
    assert len(make(version="2026.5.6").get("/core/groups/", search=query)["results"]) == 8
    assert make(version="2025.12.1").get("/core/groups/", search=query)["results"] == []


def test_pages_count_from_one_next_is_zero_at_the_end_and_past_the_end_is_404(api):
    total = len(api.ak.state.users)
    first = api.get("/core/users/", page_size=10)
    assert first["pagination"]["next"] == 2 and first["pagination"]["previous"] == 0
    assert first["pagination"]["count"] == total and first["pagination"]["start_index"] == 1
    pages, seen, page = first["pagination"]["total_pages"], [], 1
    while page:
        body = api.get("/core/users/", page_size=10, page=page)
        seen += [u["username"] for u in body["results"]]
        page = body["pagination"]["next"]
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen)
    assert body["pagination"]["current"] == pages and body["pagination"]["end_index"] == total
    past = api("GET", "/core/users/", params={"page_size": 10, "page": pages + 1})
    assert past.status_code == 404 and past.json() == {"detail": "Invalid page."}
    assert api.get("/core/groups/", search="no such group")["pagination"]["next"] == 0


def test_a_bad_or_missing_token_is_403_without_www_authenticate(api):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Token {api.ak.token}"}):
        response = requests.get(api.ak.base_url + "/core/users/me/", headers=headers, timeout=5)
        assert response.status_code == 403 and "detail" in response.json()
        assert "WWW-Authenticate" not in response.headers
    assert api.get("/core/users/me/")["user"]["username"] == "akadmin"


def test_a_duplicate_group_name_is_a_400_on_the_name_field(api):
    response = api("POST", "/core/groups/", json={"name": CF_ADMIN})
    assert response.status_code == 400 and list(response.json()) == ["name"]
    rename = api("PATCH", f"/core/groups/{api.group('Contractors')['pk']}/", json={"name": "Engineering"})
    assert rename.status_code == 400 and "name" in rename.json()
    assert api("POST", "/core/groups/", json={"users": []}).json() == {"name": ["This field is required."]}
    bad_users = api("POST", "/core/groups/", json={"name": "x", "users": [99999]})
    assert bad_users.status_code == 400 and "users" in bad_users.json()


def test_patch_users_replaces_the_member_list_and_add_user_of_an_unknown_user_is_404(api):
    group = api.group("Engineering")
    ben = api.user(BEN)["pk"]
    body = api("PATCH", f"/core/groups/{group['pk']}/", json={"users": [ben]}).json()
    assert body["users"] == [ben] and [u["pk"] for u in body["users_obj"]] == [ben]
    assert api("POST", f"/core/groups/{group['pk']}/add_user/", json={"pk": 424242}).status_code == 404
    assert api("POST", f"/core/groups/{group['pk']}/add_user/", json={}).status_code == 400


def test_injected_faults_hit_the_matching_request_only(api):
    api.ak.inject("GET", r"/core/groups/$", "5xx")
    assert api("GET", "/core/groups/").status_code >= 500
    assert api("GET", "/core/groups/").status_code == 200
    assert ("GET", "/api/v3/core/groups/", 200) in api.ak.calls


# ---- SCIM pushes into the Cloudflare sandbox -----------------------------------------------------------


def test_sync_object_creates_a_locked_user_group_with_the_linked_members(api):
    uuid = _new_group(api, "Cloudflare - Administrator", members=[BEN, CHLOE, OUTSIDER])
    api.cf.reset_calls()
    messages = api.sync(uuid)
    assert all(m["log_level"] == "info" for m in messages), messages
    group = _cf_group(api, "Cloudflare - Administrator")
    assert group is not None and group["scim_managed"]
    assert _cf_member_emails(api, group) == [BEN, CHLOE]  # the IdP-only user has no Cloudflare link
    assert api.link(uuid)["scim_id"] == group["id"] and group["external_id"] == uuid
    # The full sync that PATCHing the provider started already created it: the object sync reads only.
    assert [c[0] for c in api.scim_calls()] == ["GET"]


def test_create_sends_post_then_one_patch_adding_members(make):
    api = make(scope="all")
    api.cf.reset_calls()
    uuid = _new_group(api, "Cloudflare - Billing", members=[BEN], in_scope=False)  # scope all: the direct sync pushes
    calls = [(m, p) for m, p, _ in api.scim_calls()]
    scim_id = api.link(uuid)["scim_id"]
    assert calls == [("GET", "/ServiceProviderConfig"), ("POST", "/Groups"), ("PATCH", f"/Groups/{scim_id}")]
    assert _cf_member_emails(api, _cf_group(api, "Cloudflare - Billing")) == [BEN]


def test_a_409_adopts_the_same_named_cloudflare_group(make):
    api = make(scope="all")  # the direct sync on create pushes (a full sync would discover it first)
    existing = requests.post(
        f"{api.cf.base_url}/accounts/{ACCT}/scim/v2/Groups", headers={"Authorization": f"Bearer {api.cf.token}"},
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Cloudflare - DNS"}, timeout=5,
    ).json()["id"]
    api.cf.reset_calls()
    uuid = _new_group(api, "Cloudflare - DNS", members=[BEN], in_scope=False)
    assert api.link(uuid)["scim_id"] == existing
    calls = [(m, p, s) for m, p, s in api.scim_calls()]
    assert ("POST", "/Groups", 409) in calls and ("GET", "/Groups", 200) in calls
    assert _cf_member_emails(api, api.cf.state.user_groups[existing]) == [BEN]
    assert sum(1 for g in api.cf.state.user_groups.values() if g["name"] == "Cloudflare - DNS") == 1


def test_deleting_a_link_only_forgets_it_and_the_next_sync_adopts_the_group_again(api):
    uuid = _new_group(api, "Cloudflare - Workers", members=[BEN])
    scim_id = api.link(uuid)["scim_id"]
    link_id = api.get("/providers/scim_groups/", group__group_uuid=uuid)["results"][0]["id"]
    assert api("DELETE", f"/providers/scim_groups/{link_id}/").status_code == 204
    assert api.link(uuid) is None and scim_id in api.cf.state.user_groups
    api.sync(uuid)
    assert api.link(uuid)["scim_id"] == scim_id


def test_a_rename_reaches_cloudflare_on_the_same_id(api):
    uuid = _new_group(api, "Cloudflare - Admin", members=[BEN])
    scim_id = api.link(uuid)["scim_id"]
    api.cf.reset_calls()
    assert api("PATCH", f"/core/groups/{uuid}/", json={"name": "Cloudflare - Administrator"}).status_code == 200
    assert api.cf.state.user_groups[scim_id]["name"] == "Cloudflare - Administrator"
    patch = next(c for c in api.scim_calls() if c[0] == "PATCH")
    assert patch == ("PATCH", f"/Groups/{scim_id}", 200)


def test_a_remote_404_on_update_drops_the_link_and_creates_the_group_again(api):
    uuid = _new_group(api, "Cloudflare - Audit", members=[BEN])
    old = api.link(uuid)["scim_id"]
    api.cf.state.delete_user_group(old, via_scim=True)
    api("PATCH", f"/core/groups/{uuid}/", json={"name": "Cloudflare - Auditors"})
    new = api.link(uuid)["scim_id"]
    assert new != old and api.cf.state.user_groups[new]["name"] == "Cloudflare - Auditors"


def test_remove_user_from_a_cf_group_revokes_that_role_in_cloudflare(api):
    cf = api.cf.state
    system_id = api.link(api.group(CF_ADMIN)["pk"])["scim_id"]
    role = cf.scim_groups[system_id]["role"]
    member = cf.member_ids_by_email[BEN]
    assert role in cf.members[member]["roles"]
    response = api("POST", f"/core/groups/{api.group(CF_ADMIN)['pk']}/remove_user/", json={"pk": api.user(BEN)["pk"]})
    assert response.status_code == 204
    assert role not in cf.members[member]["roles"]
    roles = requests.get(f"{api.cf.base_url}/accounts/{ACCT}/members/{member}", headers={"Authorization": f"Bearer {api.cf.token}"},
                         timeout=5).json()["result"]["roles"]
    assert role not in [r["id"] for r in roles]
    assert api("POST", f"/core/groups/{api.group(CF_ADMIN)['pk']}/add_user/", json={"pk": api.user(BEN)["pk"]}).status_code == 204
    assert role in cf.members[member]["roles"]


def test_deleting_a_group_pushes_delete_and_a_refused_delete_is_a_task_warning(api):
    uuid = _new_group(api, "Cloudflare - Temp", members=[BEN])
    scim_id = api.link(uuid)["scim_id"]
    assert api("DELETE", f"/core/groups/{uuid}/").status_code == 204
    assert scim_id not in api.cf.state.user_groups
    cf_admin = api.group(CF_ADMIN)["pk"]
    assert api("DELETE", f"/core/groups/{cf_admin}/").status_code == 204
    assert cf_admin not in api.ak.state.groups
    task = api.latest_task()
    assert task["aggregated_status"] == "warning" and "System groups cannot be deleted" in task["logs"][-1]["event"]
    # The refused DELETE is a transient error to authentik: retried, 5 times, then given up.
    assert task["actor_name"].endswith("scim_sync_delete") and task["state"] == "rejected" and task["retries"] == 5
    assert sum("System groups cannot be deleted" in e["event"] for e in task["logs"]) == 6
    # The sync status is the schedule's newest task: it says nothing of signal tasks.
    status = api.get(f"/providers/scim/{api.ak.provider_id}/sync/status/")
    assert status["last_sync_status"] == "info"
    problems = api.get("/tasks/tasks/", rel_obj_id=api.ak.provider_id, aggregated_status=["warning", "error"])
    assert problems["results"][0]["message_id"] == task["message_id"]


def test_a_provider_not_attached_to_an_application_pushes_nothing(make):
    api = make(attached=False)
    uuid = _new_group(api, "Cloudflare - Admin", members=[BEN])
    api.cf.reset_calls()
    messages = api.sync(uuid)
    assert [m["event"] for m in messages] == ["No provider found. Is it assigned to an application?"]
    assert messages[0]["log_level"] == "warning"
    assert api.scim_calls() == [] and api.link(uuid) is None
    api("POST", f"/core/groups/{api.group(CF_ADMIN)['pk']}/remove_user/", json={"pk": api.user(BEN)["pk"]})
    assert api.scim_calls() == []
    assert api.get(f"/providers/scim/{api.ak.provider_id}/")["assigned_backchannel_application_slug"] is None


@pytest.mark.parametrize("version, cleanup", [("2026.2.0", False), ("2026.2.2", True), ("2026.5.6", True)])
def test_a_group_outside_group_filters_is_not_pushed_and_leaving_them_deletes_it_from_2026_2_2(make, version, cleanup):
    api = make(version=version)
    api.cf.reset_calls()
    uuid = _new_group(api, "Cloudflare - Outside", members=[BEN], in_scope=False)
    assert [m["event"] for m in api.sync(uuid)] == ["Syncing page 1 of groups"]
    assert api.link(uuid) is None and _cf_group(api, "Cloudflare - Outside") is None
    assert not [c for c in api.scim_calls() if c[0] != "GET"]
    # In scope, pushed, then out of scope again: the PATCH's full sync deletes it from 2026.2.2 on.
    inside = _new_group(api, "Cloudflare - Inside", members=[BEN])
    scim_id = api.link(inside)["scim_id"]
    filters = [g for g in api.get(f"/providers/scim/{api.ak.provider_id}/")["group_filters"] if g != inside]
    api("PATCH", f"/providers/scim/{api.ak.provider_id}/", json={"group_filters": filters})
    assert (_cf_group(api, "Cloudflare - Inside") is None) is cleanup
    assert (("DELETE", f"/Groups/{scim_id}", 204) in api.scim_calls()) is cleanup
    assert (api.link(inside) is None) is cleanup


def test_dry_run_drops_mutating_requests_and_logs_them(api):
    api("PATCH", f"/providers/scim/{api.ak.provider_id}/", json={"dry_run": True})
    uuid = _new_group(api, "Cloudflare - Dry", members=[BEN])
    messages = api.sync(uuid)
    drop = next(m for m in messages if m["event"] == "Dropping mutating request due to dry run")
    assert drop["attributes"]["method"] == "POST" and drop["attributes"]["url"].endswith("/scim/v2/Groups")
    assert drop["attributes"]["body"]["displayName"] == "Cloudflare - Dry"
    assert _cf_group(api, "Cloudflare - Dry") is None and api.link(uuid) is None
    api.sync(uuid, override_dry_run=True)
    assert _cf_group(api, "Cloudflare - Dry") is not None


def test_a_token_cloudflare_rejects_is_a_task_warning_not_an_exception(make):
    api = make(provider_token="not-the-cloudflare-token", scope="all")
    uuid = _new_group(api, "Cloudflare - Admin", members=[BEN], in_scope=False)
    messages = api.sync(uuid)
    assert messages[-1]["log_level"] == "warning" and "due to transient error: HTTP 403" in messages[-1]["event"]
    assert "not-the-cloudflare-token" not in json.dumps(api.ak.state.tasks)
    schedule = api.get("/tasks/schedules/", rel_obj_content_type__app_label="authentik_providers_scim",
                       rel_obj_content_type__model="scimprovider", rel_obj_id=api.ak.provider_id,
                       actor_name="authentik.providers.scim.tasks.scim_sync")["results"][0]
    assert api("POST", f"/tasks/schedules/{schedule['id']}/send/").status_code == 204
    # The full sync logs only "info": its status looks fine while every page failed (notes, corrected).
    status = api.get(f"/providers/scim/{api.ak.provider_id}/sync/status/")
    assert status["last_sync_status"] == "info" and not status["is_running"]
    newest = api.get("/tasks/tasks/", rel_obj_id=schedule["id"], ordering="-mtime")["results"]
    assert newest[0]["actor_name"] == "authentik.providers.scim.tasks.scim_sync"
    pages = [t for t in newest if t["actor_name"].endswith("scim_sync_objects")]
    assert any(t["aggregated_status"] == "warning" for t in pages)


def test_a_clean_full_sync_of_the_seed_writes_nothing_and_is_successful(api):
    api.cf.reset_calls()
    task = api.ak.full_sync()
    assert task["aggregated_status"] == "info", task["logs"]
    assert not [c for c in api.scim_calls() if c[0] != "GET"]
    status = api.get(f"/providers/scim/{api.ak.provider_id}/sync/status/")
    assert status["last_sync_status"] == "info" and "last_successful_sync" in status


# ---- version shapes -----------------------------------------------------------------------------------


def test_version_shapes(make):
    old = make(version="2025.10.3")
    provider = old.get(f"/providers/scim/{old.ak.provider_id}/")
    assert "group_filters" not in provider and "filter_group" in provider and "token" in provider
    group = old.get(f"/core/groups/{_some_group(old)}/")
    assert "parent" in group and "parents" not in group
    assert old("GET", "/tasks/tasks/").status_code == 200 and "autocomplete" in old.get("/core/groups/")

    current = make(version="2026.5.6")
    provider = current.get(f"/providers/scim/{current.ak.provider_id}/")
    # the 8 CF- groups and the SCIM-managed User Group: in scope, or a 2026.2.2+ full sync would delete them
    assert provider["token"] == current.cf.token and len(provider["group_filters"]) == 9
    assert "discovery_enabled" not in provider
    assert "parents" in current.get(f"/core/groups/{_some_group(current)}/")

    newest = make(version="2026.8.5")
    provider = newest.get(f"/providers/scim/{newest.ak.provider_id}/")
    assert "token" not in provider and provider["discovery_enabled"] is True

    older = make(version="2025.6.4")
    assert "autocomplete" not in older.get("/core/groups/")
    assert older("GET", "/tasks/tasks/").status_code == 404
    older.ak.full_sync()
    status = older.get(f"/providers/scim/{older.ak.provider_id}/sync/status/")
    assert set(status) == {"is_running", "tasks"} and status["tasks"][0]["status"] == "successful"


@pytest.mark.parametrize("version, adopted", [("2025.12.4", False), ("2026.2.0", True), ("2026.8.5", True)])
def test_a_same_named_cloudflare_group_is_never_discovered_and_adopted_after_a_409_only_from_2026_2(make, version, adopted):
    api = make(version=version, scope="all")
    existing = requests.post(
        f"{api.cf.base_url}/accounts/{ACCT}/scim/v2/Groups", headers={"Authorization": f"Bearer {api.cf.token}"},
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Cloudflare - DNS"}, timeout=5,
    ).json()["id"]
    api.cf.reset_calls()
    uuid = _new_group(api, "Cloudflare - DNS", members=[BEN], in_scope=False)
    api.ak.full_sync()
    calls = api.scim_calls()
    assert ("POST", "/Groups", 409) in calls  # no discovery: it always tries to create it first
    assert ((api.link(uuid) or {}).get("scim_id") == existing) is adopted
    failed = [t for t in api.ak.state.tasks if "ObjectExistsSyncException" in json.dumps(t["logs"])]
    assert bool(failed) is not adopted


# ---- vgmigrate sandbox serve --authentik ----------------------------------------------------------------


def test_serve_with_authentik_prints_both_environments_and_serves_both():
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "sandbox", "serve", "--port", "0", "--no-rate-limit", "--authentik",
         "--authentik-port", "0", "--authentik-version", "2026.8.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        env = {}
        for _ in range(12):
            line = process.stdout.readline()
            if line.strip().startswith("export "):
                env.update(pair.split("=", 1) for pair in line.split()[1:])
            if line.startswith("Press Ctrl-C") or not line:
                break
        assert {"CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_TOKEN", "AUTHENTIK_URL", "AUTHENTIK_TOKEN"} <= set(env)
        headers = {"Authorization": f"Bearer {env['AUTHENTIK_TOKEN']}"}
        version = requests.get(env["AUTHENTIK_URL"] + "/admin/version/", headers=headers, timeout=5).json()
        assert version["version_current"] == "2026.8.5"
        provider = requests.get(env["AUTHENTIK_URL"] + "/providers/scim/", headers=headers, timeout=5).json()["results"][0]
        assert provider["url"].startswith(env["CLOUDFLARE_BASE_URL"] + "/accounts/") and "token" not in provider
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and "Traceback" not in err
