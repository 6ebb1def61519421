"""Contract: every operation the sandbox implements answers with a body valid against Cloudflare's
own response schema for that operation (tests/schemas/cloudflare-openapi-subset.json)."""

import copy
import json

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from schema_files import CLOUDFLARE as SPEC_PATH

SPEC_URI = "urn:cloudflare:openapi-subset"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _load_spec():
    spec = json.loads(SPEC_PATH.read_text())
    # Known conflict inside Cloudflare's schema: the roles *list* types `permissions` as an array of
    # strings (iam_schemas-role), while the same role embedded in members (iam_role) and the
    # official SDK's Role model type it as {analytics: {read, write}, ...}. The sandbox returns the
    # object form everywhere, so the list is checked against the object form.
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    schemas["iam_schemas-role"]["properties"]["permissions"] = {"$ref": "#/components/schemas/iam_permissions"}
    # The audit-log collection is `oneOf: [entries envelope, common envelope]`, and every success
    # body matches both branches, so as written nothing validates (oneOf meant as anyOf). Require
    # both instead, which keeps the entries checked.
    audit = schemas["aaa_audit_logs_response_collection"]
    audit["allOf"] = audit.pop("oneOf")
    return spec


SPEC = _load_spec()
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT4))


def _pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validate(method, spec_path, response):
    status = str(response.status_code) if response.status_code < 400 else "4XX"
    declared = SPEC["paths"][spec_path][method.lower()]["responses"]
    assert status in declared, f"{method} {spec_path} answered {response.status_code}, schema declares {sorted(declared)}"
    content = declared[status].get("content")
    if not content:
        assert response.content == b""
        return
    media_type = next(iter(content))
    assert response.headers["Content-Type"].split(";")[0] == media_type
    ref = f"{SPEC_URI}#/{_pointer('paths', spec_path, method.lower(), 'responses', status, 'content', media_type, 'schema')}"
    validator = OAS30Validator({"$ref": ref}, registry=REGISTRY, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
    assert not errors, f"{method} {spec_path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


class Client:
    def __init__(self, sb):
        self.sb = sb
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sb.token}"

    def __call__(self, method, path, **kwargs):
        path = path.replace("{account_id}", self.sb.account_id)
        return self.session.request(method, self.sb.base_url + path, timeout=5, **kwargs)


@pytest.fixture
def client(sandbox):
    return Client(sandbox)


def _resource_group(client):
    scope = {"key": f"com.cloudflare.api.account.{client.sb.account_id}", "objects": [{"key": "*"}]}
    return client("POST", "/accounts/{account_id}/iam/resource_groups", json={"name": "Whole account", "scope": scope}).json()["result"]["id"]


def _user_group(client, with_policy=True):
    state = client.sb.state
    body = {"name": "Contract group"}
    if with_policy:
        body["policies"] = [{"access": "allow", "permission_groups": [{"id": state.permission_group_ids_by_name["DNS"]}],
                             "resource_groups": [{"id": _resource_group(client)}]}]
    group = client("POST", "/accounts/{account_id}/iam/user_groups", json=body).json()["result"]["id"]
    members = [{"id": m} for m in list(state.members)[:3]]
    client("PUT", f"/accounts/{{account_id}}/iam/user_groups/{group}/members", json=members)
    return group, members[0]["id"]


def _first(table):
    return next(iter(table))


def _member(client):
    return client.sb.state.member_ids_by_email["ben.brandt@acme-corp.example"]


def _custom_scim_group(client):
    body = {"schemas": [SCIM_GROUP], "displayName": "Pushed Admins", "externalId": "idp-1"}
    return client("POST", "/accounts/{account_id}/scim/v2/Groups", json=body).json()["id"]


A = "/accounts/{account_id}"
# (method, schema path, how to call it: client -> response)
CASES = [
    ("GET", "/accounts/{account_id}", lambda c: c("GET", A)),
    ("PUT", "/accounts/{account_id}", lambda c: c("PUT", A, json={"id": c.sb.account_id, "name": "Acme Corp Renamed", "type": "enterprise"})),
    ("GET", "/accounts/{account_id}/tokens/verify", lambda c: c("GET", A + "/tokens/verify")),
    ("GET", "/user/tokens/verify", lambda c: c("GET", "/user/tokens/verify")),
    ("GET", "/accounts/{account_id}/iam/permission_groups", lambda c: c("GET", A + "/iam/permission_groups?per_page=50")),
    ("GET", "/accounts/{account_id}/iam/permission_groups/{permission_group_id}",
     lambda c: c("GET", f"{A}/iam/permission_groups/{_first(c.sb.state.permission_groups)}")),
    ("GET", "/accounts/{account_id}/iam/resource_groups", lambda c: (_resource_group(c), c("GET", A + "/iam/resource_groups"))[1]),
    ("POST", "/accounts/{account_id}/iam/resource_groups",
     lambda c: c("POST", A + "/iam/resource_groups", json={"name": "n", "scope": {"key": f"com.cloudflare.api.account.{c.sb.account_id}", "objects": [{"key": "*"}]}})),
    ("GET", "/accounts/{account_id}/iam/resource_groups/{resource_group_id}", lambda c: c("GET", f"{A}/iam/resource_groups/{_resource_group(c)}")),
    ("PUT", "/accounts/{account_id}/iam/resource_groups/{resource_group_id}",
     lambda c: c("PUT", f"{A}/iam/resource_groups/{_resource_group(c)}", json={"name": "Renamed"})),
    ("DELETE", "/accounts/{account_id}/iam/resource_groups/{resource_group_id}", lambda c: c("DELETE", f"{A}/iam/resource_groups/{_resource_group(c)}")),
    ("GET", "/accounts/{account_id}/iam/user_groups", lambda c: (_user_group(c), c("GET", A + "/iam/user_groups"))[1]),
    ("POST", "/accounts/{account_id}/iam/user_groups",
     lambda c: c("POST", A + "/iam/user_groups", json={"name": "New", "policies": [{"access": "allow", "permission_groups": [{"id": _first(c.sb.state.permission_groups)}], "resource_groups": [{"id": _resource_group(c)}]}]})),
    ("GET", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: c("GET", f"{A}/iam/user_groups/{_user_group(c)[0]}")),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: c("PUT", f"{A}/iam/user_groups/{_user_group(c)[0]}", json={"name": "Renamed"})),
    ("DELETE", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: c("DELETE", f"{A}/iam/user_groups/{_user_group(c)[0]}")),
    ("GET", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members", lambda c: c("GET", f"{A}/iam/user_groups/{_user_group(c)[0]}/members")),
    ("POST", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members",
     lambda c: c("POST", f"{A}/iam/user_groups/{_user_group(c, False)[0]}/members", json=[{"id": _member(c)}])),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members",
     lambda c: c("PUT", f"{A}/iam/user_groups/{_user_group(c, False)[0]}/members", json=[{"id": _member(c)}])),
    ("GET", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}",
     lambda c: c("GET", "{}/iam/user_groups/{}/members/{}".format(A, *_user_group(c, False)))),
    ("DELETE", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}",
     lambda c: c("DELETE", "{}/iam/user_groups/{}/members/{}".format(A, *_user_group(c, False)))),
    ("GET", "/accounts/{account_id}/members", lambda c: c("GET", A + "/members?per_page=50")),
    ("POST", "/accounts/{account_id}/members",
     lambda c: c("POST", A + "/members", json={"email": "new@acme-corp.example", "roles": [_first(c.sb.state.roles)]})),
    ("GET", "/accounts/{account_id}/members/{member_id}", lambda c: c("GET", f"{A}/members/{_member(c)}")),
    ("PUT", "/accounts/{account_id}/members/{member_id}",
     lambda c: c("PUT", f"{A}/members/{_member(c)}", json={"policies": [{"access": "allow", "permission_groups": [{"id": _first(c.sb.state.permission_groups)}], "resource_groups": [{"id": _resource_group(c)}]}]})),
    ("DELETE", "/accounts/{account_id}/members/{member_id}", lambda c: c("DELETE", f"{A}/members/{_member(c)}")),
    ("GET", "/accounts/{account_id}/roles", lambda c: c("GET", A + "/roles?per_page=50")),
    ("GET", "/accounts/{account_id}/roles/{role_id}", lambda c: c("GET", f"{A}/roles/{_first(c.sb.state.roles)}")),
    ("GET", "/accounts/{account_id}/audit_logs", lambda c: (_user_group(c), c("GET", A + "/audit_logs"))[1]),
    ("GET", "/accounts/{account_id}/scim/v2/Users", lambda c: c("GET", A + "/scim/v2/Users")),
    ("POST", "/accounts/{account_id}/scim/v2/Users",
     lambda c: c("POST", A + "/scim/v2/Users", json={"schemas": [SCIM_USER], "userName": "pushed@acme-corp.example", "active": True,
                                                      "emails": [{"value": "pushed@acme-corp.example", "primary": True, "type": "work"}],
                                                      "name": {"givenName": "Pat", "familyName": "Pushed"}})),
    ("GET", "/accounts/{account_id}/scim/v2/Users/{user_id}", lambda c: c("GET", f"{A}/scim/v2/Users/{_first(c.sb.state.scim_users)}")),
    ("PUT", "/accounts/{account_id}/scim/v2/Users/{user_id}",
     lambda c: c("PUT", f"{A}/scim/v2/Users/{_first(c.sb.state.scim_users)}", json={"schemas": [SCIM_USER], "userName": c.sb.state.scim_users[_first(c.sb.state.scim_users)]["userName"], "name": {"givenName": "New"}})),
    ("PATCH", "/accounts/{account_id}/scim/v2/Users/{user_id}",
     lambda c: c("PATCH", f"{A}/scim/v2/Users/{_first(c.sb.state.scim_users)}", json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "name.givenName", "value": "Renamed"}]})),
    ("GET", "/accounts/{account_id}/scim/v2/Groups", lambda c: c("GET", A + "/scim/v2/Groups")),
    ("POST", "/accounts/{account_id}/scim/v2/Groups", lambda c: c("POST", A + "/scim/v2/Groups", json={"schemas": [SCIM_GROUP], "displayName": "Pushed"})),
    ("GET", "/accounts/{account_id}/scim/v2/Groups/{group_id}", lambda c: c("GET", f"{A}/scim/v2/Groups/{_custom_scim_group(c)}")),
    ("PATCH", "/accounts/{account_id}/scim/v2/Groups/{group_id}",
     lambda c: c("PATCH", f"{A}/scim/v2/Groups/{_custom_scim_group(c)}", json={"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": c.sb.state.members[_member(c)]["user"]["id"]}]}]})),
    ("DELETE", "/accounts/{account_id}/scim/v2/Groups/{group_id}", lambda c: c("DELETE", f"{A}/scim/v2/Groups/{_custom_scim_group(c)}")),
    ("GET", "/accounts/{account_id}/scim/v2/ServiceProviderConfig", lambda c: c("GET", A + "/scim/v2/ServiceProviderConfig")),
    ("GET", "/accounts/{account_id}/scim/v2/ResourceTypes", lambda c: c("GET", A + "/scim/v2/ResourceTypes")),
    ("GET", "/accounts/{account_id}/scim/v2/ResourceTypes/{resource_type_id}", lambda c: c("GET", A + "/scim/v2/ResourceTypes/Group")),
    ("GET", "/accounts/{account_id}/scim/v2/Schemas", lambda c: c("GET", A + "/scim/v2/Schemas")),
    ("GET", "/accounts/{account_id}/scim/v2/Schemas/{schema_id}", lambda c: c("GET", f"{A}/scim/v2/Schemas/{SCIM_USER}")),
]


def test_every_operation_in_the_schema_has_a_case():
    in_schema = {(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops if m in ("get", "post", "put", "patch", "delete")}
    covered = {(m, p) for m, p, _ in CASES}
    # /user/tokens/verify is only valid for user-owned tokens; it is checked in its own test below.
    assert in_schema == covered


# /user/tokens/verify needs a user-owned token: test_user_token_verify_matches_the_schema checks it.
ACCOUNT_TOKEN_CASES = [case for case in CASES if case[1] != "/user/tokens/verify"]


@pytest.mark.parametrize("method, spec_path, call", ACCOUNT_TOKEN_CASES, ids=[f"{m} {p}" for m, p, _ in ACCOUNT_TOKEN_CASES])
def test_success_bodies_match_the_schema(client, method, spec_path, call):
    response = call(client)
    assert response.status_code < 300, response.text
    validate(method, spec_path, response)


def test_user_token_verify_matches_the_schema():
    from migrate.sandbox import Sandbox

    with Sandbox(token_kind="user", rate_limit=None) as sb:
        response = Client(sb)("GET", "/user/tokens/verify")
        assert response.status_code == 200
        validate("GET", "/user/tokens/verify", response)


@pytest.mark.parametrize(
    "method, spec_path, path, body",
    [
        ("POST", "/accounts/{account_id}/iam/user_groups", A + "/iam/user_groups", {"name": "CF-reserved"}),
        ("GET", "/accounts/{account_id}/iam/permission_groups", A + "/iam/permission_groups?per_page=500", None),
        ("GET", "/accounts/{account_id}/members/{member_id}", A + "/members/" + "0" * 32, None),
        ("GET", "/accounts/{account_id}/scim/v2/Users", A + '/scim/v2/Users?filter=title eq "x"', None),
        ("GET", "/accounts/{account_id}/scim/v2/Groups/{group_id}", A + "/scim/v2/Groups/missing", None),
    ],
)
def test_failure_bodies_match_the_schema(client, method, spec_path, path, body):
    response = client(method, path, json=body)
    assert response.status_code >= 400
    validate(method, spec_path, response)


def _group_with_policy(c):
    return _user_group(c)[0]


# Requests the schema forbids, on the writes the tool makes: each is a 400 in the v4 failure shape.
def _policy_body(c, **extra):
    return {"access": "allow", "permission_groups": [{"id": c.sb.state.permission_group_ids_by_name["DNS"]}],
            "resource_groups": [{"id": _resource_group(c)}], **extra}


FORBIDDEN = [
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: (f"{A}/iam/user_groups/{_group_with_policy(c)}", {"policies": [_policy_body(c)]})),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: (f"{A}/iam/user_groups/{_group_with_policy(c)}", {"policies": [_policy_body(c, id=None)]})),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: (f"{A}/iam/user_groups/{_group_with_policy(c)}", {"name": None})),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", lambda c: (f"{A}/iam/user_groups/{_group_with_policy(c)}", {"policies": {"id": "x"}})),
    ("POST", "/accounts/{account_id}/iam/user_groups", lambda c: (A + "/iam/user_groups", {"name": 7})),
    ("POST", "/accounts/{account_id}/iam/user_groups", lambda c: (A + "/iam/user_groups", {"name": "N", "policies": None})),
    ("POST", "/accounts/{account_id}/iam/user_groups", lambda c: (A + "/iam/user_groups", {"name": "N", "policies": [_policy_body(c, access="permit")]})),
    ("POST", "/accounts/{account_id}/iam/user_groups", lambda c: (A + "/iam/user_groups", {"name": "N", "policies": [{"access": "allow", "resource_groups": [{"id": _resource_group(c)}]}]})),
    ("POST", "/accounts/{account_id}/iam/user_groups", lambda c: (A + "/iam/user_groups", {"name": "N", "policies": [_policy_body(c, permission_groups=["49ce85367bae433b9f0717ed4fea5c74"])]})),
    ("POST", "/accounts/{account_id}/iam/resource_groups", lambda c: (A + "/iam/resource_groups", {"name": "n"})),
    ("POST", "/accounts/{account_id}/iam/resource_groups", lambda c: (A + "/iam/resource_groups", {"scope": {"key": f"com.cloudflare.api.account.{c.sb.account_id}", "objects": [{"key": "*"}]}})),
    ("PUT", "/accounts/{account_id}/iam/resource_groups/{resource_group_id}", lambda c: (f"{A}/iam/resource_groups/{_resource_group(c)}", {"name": None})),
    ("POST", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members", lambda c: (f"{A}/iam/user_groups/{_user_group(c, False)[0]}/members", {"members": [{"id": _member(c)}]})),
    ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members", lambda c: (f"{A}/iam/user_groups/{_user_group(c, False)[0]}/members", [{"member": _member(c)}])),
    ("POST", "/accounts/{account_id}/members", lambda c: (A + "/members", {"email": "x@acme-corp.example", "roles": [_first(c.sb.state.roles)], "status": "rejected"})),
]


@pytest.mark.parametrize("method, spec_path, make", FORBIDDEN, ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(FORBIDDEN)])
def test_bodies_the_schema_forbids_are_rejected(client, method, spec_path, make):
    path, body = make(client)
    before = client.sb.state.snapshot()
    response = client(method, path, json=body)
    assert response.status_code == 400, response.text
    validate(method, spec_path, response)
    assert client.sb.state.snapshot() == before  # nothing was written


@pytest.mark.parametrize(
    "method, spec_path, path, headers",
    [
        ("GET", "/accounts/{account_id}/iam/user_groups", A + "/iam/user_groups", {"Authorization": "Token abc"}),
        ("GET", "/accounts/{account_id}/iam/user_groups", A + "/iam/user_groups", {"Authorization": None}),
        ("GET", "/accounts/{account_id}/members/{member_id}", A + "/members/not-a-member-id", {}),
        ("GET", "/accounts/{account_id}/iam/user_groups/{user_group_id}", A + "/iam/user_groups/" + "z" * 32, {}),
        ("DELETE", "/accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}", A + "/iam/user_groups/" + "1" * 32 + "/members/x", {}),
        ("PUT", "/accounts/{account_id}/iam/user_groups/{user_group_id}", A + "/iam/user_groups/" + "0" * 32, {}),
    ],
)
def test_edge_and_routing_failures_match_the_schema(client, method, spec_path, path, headers):
    response = client(method, path, json={"name": "x"} if method == "PUT" else None, headers=headers)
    assert response.status_code in (400, 404)
    validate(method, spec_path, response)


def test_audit_log_v1_entries_use_only_schema_fields(client):
    _user_group(client)
    response = client("GET", "/accounts/{account_id}/audit_logs?per_page=1000")
    validate("GET", "/accounts/{account_id}/audit_logs", response)
    declared = set(SPEC["components"]["schemas"]["aaa_audit-logs"]["properties"])
    for entry in response.json()["result"]:
        assert set(entry) <= declared
        assert set(entry["resource"]) <= {"id", "type"} and set(entry["action"]) <= {"type", "result"}
        assert set(entry["actor"]) <= {"id", "email", "ip", "type"}
    # SCIM operations are logged in Audit Logs v2 only (changelog 2026-03-18).
    _custom_scim_group(client)
    after = client("GET", "/accounts/{account_id}/audit_logs?per_page=1000").json()["result"]
    assert len(after) == len(response.json()["result"])


# ---- Audit Logs v2: not in the schema subset, so checked against API-NOTES section 9 / SEMANTICS section 4 ---

V2 = "/accounts/{account_id}/logs/audit"
WINDOW = "since=2000-01-01&before=2999-01-01T00:00:00Z"


def _v2_entry_shape(entry):
    assert set(entry) <= {"id", "account", "action", "actor", "raw", "resource", "zone"}
    assert isinstance(entry["id"], str)
    action, actor, raw, resource = entry["action"], entry["actor"], entry["raw"], entry["resource"]
    assert isinstance(action["type"], str) and action["result"] in ("success", "failure")
    assert action["time"].endswith("Z")
    assert actor["type"] in ("account", "cloudflare_admin", "delegated_service", "system", "user")
    assert actor["context"] in ("api", "api_key", "api_token", "dash", "oauth", "origin_ca_key")
    assert raw["uri"].startswith("/client/v4/accounts/") and raw["method"] in ("POST", "PUT", "PATCH", "DELETE")
    assert isinstance(raw["status_code"], int) and isinstance(raw["cf_ray_id"], str)
    assert isinstance(resource["id"], str) and isinstance(resource["type"], str) and isinstance(resource["product"], str)


@pytest.mark.parametrize("query", ["", "since=2000-01-01", "before=2999-01-01", "since=yesterday&before=2999-01-01"])
def test_audit_log_v2_requires_since_and_before(client, query):
    response = client("GET", f"{V2}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] >= 1000


def test_audit_log_v2_pages_by_cursor_and_rays_match_the_responses(client):
    rays = {}
    for i in range(3):
        created = client("POST", "/accounts/{account_id}/iam/user_groups", json={"name": f"V2 group {i}"})
        rays[created.json()["result"]["id"]] = created.headers["cf-ray"]
    scim = client("POST", "/accounts/{account_id}/scim/v2/Groups", json={"schemas": [SCIM_GROUP], "displayName": "V2 pushed"})
    assert scim.status_code == 201
    rays[scim.json()["id"]] = scim.headers["cf-ray"]
    deleted = client("DELETE", f"/accounts/{{account_id}}/scim/v2/Groups/{scim.json()['id']}")

    walked, cursor, pages = [], None, 0
    while True:
        response = client("GET", f"{V2}?{WINDOW}&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["errors"] == []
        assert len(body["result"]) <= 2 and body["result_info"]["count"] == len(body["result"])
        walked += body["result"]
        pages += 1
        cursor = body["result_info"].get("cursor")
        assert cursor == (body["result_info"].get("cursors") or {}).get("after")
        if not cursor:
            break
    assert pages == 3 and len(walked) == 5
    for entry in walked:
        _v2_entry_shape(entry)
    times = [e["action"]["time"] for e in walked]
    assert times == sorted(times, reverse=True)  # newest first by default
    by_resource = {}
    for entry in walked:
        by_resource.setdefault(entry["resource"]["id"], []).append(entry)
    for resource_id, ray in rays.items():
        create = next(e for e in by_resource[resource_id] if e["action"]["type"] == "create")
        assert ray.startswith(create["raw"]["cf_ray_id"] + "-")
    pushed = by_resource[scim.json()["id"]]
    assert {e["raw"]["status_code"] for e in pushed} == {201, 204} and {e["resource"]["product"] for e in pushed} == {"scim"}
    assert any(deleted.headers["cf-ray"].startswith(e["raw"]["cf_ray_id"]) for e in pushed)

    asc = client("GET", f"{V2}?{WINDOW}&direction=asc&limit=1000").json()["result"]
    assert [e["id"] for e in asc] == [e["id"] for e in reversed(walked)]
    ray = next(iter(rays.values())).split("-")[0]
    assert [e["raw"]["cf_ray_id"] for e in client("GET", f"{V2}?{WINDOW}&raw_cf_ray_id={ray}").json()["result"]] == [ray]
    assert client("GET", f"{V2}?since=2999-01-01&before=2999-01-02").json()["result"] == []
    assert client("GET", f"{V2}?{WINDOW}&limit=0").status_code == 400
    assert client("GET", f"{V2}?{WINDOW}&cursor=not-a-cursor").status_code == 400
