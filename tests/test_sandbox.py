"""The sandbox behaves like Cloudflare's API: envelope, bounds, filters, write rules, auth, faults."""

import time

import pytest
import requests

from migrate.sandbox import Sandbox, SeedError
from migrate.sandbox.faults import Faults, RateLimiter
from migrate.sandbox.seeds import demo_seed, generate_seed


class Api:
    """Tiny requests wrapper: paths are relative to the sandbox's account."""

    def __init__(self, sb, token=None):
        self.sb = sb
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or sb.token}"
        self.acct = f"{sb.base_url}/accounts/{sb.account_id}"

    def __call__(self, method, path, **kwargs):
        url = path if path.startswith("http") else self.acct + path
        return self.session.request(method, url, timeout=5, **kwargs)

    def ok(self, method, path, **kwargs):
        response = self(method, path, **kwargs)
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else None


@pytest.fixture
def api(sandbox):
    return Api(sandbox)


def error_code(response):
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]["code"]


def pg_id(sb, name):
    return sb.state.permission_group_ids_by_name[name]


def account_rg(api):
    scope = {"key": f"com.cloudflare.api.account.{api.sb.account_id}", "objects": [{"key": "*"}]}
    return api.ok("POST", "/iam/resource_groups", json={"name": scope["key"], "scope": scope})["result"]["id"]


def policy(pg, rg, **extra):
    return {"access": "allow", "permission_groups": [{"id": pg}], "resource_groups": [{"id": rg}], **extra}


# ---- envelope and pagination -------------------------------------------------------------------


def test_pages_of_permission_groups_cover_everything_once_then_empty(api, sandbox):
    seen, page = [], 1
    while True:
        body = api.ok("GET", f"/iam/permission_groups?per_page=5&page={page}")
        if not body["result"]:
            break
        info = body["result_info"]
        assert info["per_page"] == 5 and info["page"] == page and info["count"] == len(body["result"])
        seen.extend(pg["id"] for pg in body["result"])
        page += 1
    assert len(seen) == len(set(seen)) == len(sandbox.state.permission_groups) == info["total_count"]
    assert info["total_pages"] == page - 1
    assert body["result"] == [] and body["result_info"]["count"] == 0 and body["success"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/iam/permission_groups?per_page=4",
        "/iam/permission_groups?per_page=51",
        "/iam/permission_groups?page=0",
        "/iam/user_groups?per_page=0",
        "/iam/user_groups?per_page=501",
        "/iam/user_groups?direction=sideways",
        "/members?per_page=51",
        "/members?per_page=abc",
        "/roles?per_page=4",
        "/audit_logs?per_page=1001",
        "/iam/permission_groups?id=tooshort",
    ],
)
def test_out_of_bounds_parameters_are_400_not_clamped(api, path):
    response = api("GET", path)
    assert response.status_code == 400
    assert error_code(response) == 1004


def test_list_defaults_follow_the_schema(api):
    assert api.ok("GET", "/iam/permission_groups")["result_info"]["per_page"] == 20
    assert api.ok("GET", "/members")["result_info"]["per_page"] == 20
    assert api.ok("GET", "/iam/user_groups")["result_info"]["per_page"] == 100
    assert api.ok("GET", "/iam/user_groups?per_page=500")["result_info"]["per_page"] == 500
    assert "result_info" not in api.ok("GET", "/iam/resource_groups")


def test_permission_group_filters(api, sandbox):
    dns = api.ok("GET", "/iam/permission_groups?name=DNS")["result"]
    assert [pg["name"] for pg in dns] == ["DNS"]
    assert api.ok("GET", "/iam/permission_groups?name=dns")["result"] == []
    assert [pg["name"] for pg in api.ok("GET", "/iam/permission_groups?label=admin_readonly")["result"]] == ["Administrator Read Only"]
    by_id = api.ok("GET", f"/iam/permission_groups?id={dns[0]['id']}")
    assert by_id["result"] == dns and by_id["result_info"]["total_count"] == 1
    one = api.ok("GET", f"/iam/permission_groups/{dns[0]['id']}")["result"]
    assert one == dns[0] and one["meta"]["scopes"] == "com.cloudflare.api.account"


def test_user_group_filters_and_direction(api):
    for name in ("Zeta ops", "alpha Ops", "Middle"):
        api.ok("POST", "/iam/user_groups", json={"name": name})
    names = [g["name"] for g in api.ok("GET", "/iam/user_groups")["result"]]
    assert names == sorted(names, key=str.casefold)
    assert [g["name"] for g in api.ok("GET", "/iam/user_groups?direction=desc")["result"]] == names[::-1]
    assert [g["name"] for g in api.ok("GET", "/iam/user_groups?fuzzyName=OPS")["result"]] == ["alpha Ops", "Zeta ops"]
    exact = api.ok("GET", "/iam/user_groups?name=Middle")
    assert [g["name"] for g in exact["result"]] == ["Middle"] and exact["result_info"]["total_count"] == 1
    assert api.ok("GET", "/iam/user_groups?name=middle")["result"] == []
    page2 = api.ok("GET", "/iam/user_groups?per_page=2&page=2")
    assert [g["name"] for g in page2["result"]] == names[2:4]


def test_member_filters_and_order(api, sandbox):
    pending = api.ok("GET", "/members?status=pending&per_page=50")["result"]
    assert [m["status"] for m in pending] == ["pending"]
    by_email = api.ok("GET", "/members?order=user.email&direction=desc&per_page=5&page=2")["result"]
    emails = sorted((m["email"] for m in sandbox.state.members.values()), reverse=True)
    assert [m["email"] for m in by_email] == emails[5:10]
    member = api.ok("GET", "/members?per_page=5")["result"][0]
    assert {"id", "name", "description", "permissions"} <= set(member["roles"][0])


# ---- user groups -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CF-Admins", "cf admins", "Cf", "CFO office"])
def test_cf_prefix_is_reserved(api, name):
    response = api("POST", "/iam/user_groups", json={"name": name})
    assert response.status_code == 400 and "CF" in response.json()["errors"][0]["message"]


def test_create_rejects_bad_bodies(api, sandbox):
    assert error_code(api("POST", "/iam/user_groups", data="{not json", headers={"Content-Type": "application/json"})) == 6007
    assert api("POST", "/iam/user_groups", json={"policies": []}).status_code == 400
    assert api("POST", "/iam/user_groups", json={"name": "Administrator Read Only"}).status_code == 400  # duplicate
    unknown_pg = policy("0" * 32, "1" * 32)
    assert api("POST", "/iam/user_groups", json={"name": "X", "policies": [unknown_pg]}).status_code == 400
    inline_scope = {"access": "allow", "permission_groups": [{"id": pg_id(sandbox, "DNS")}],
                    "resource_groups": [{"scope": {"key": f"com.cloudflare.api.account.{sandbox.account_id}", "objects": [{"key": "*"}]}}]}
    assert api("POST", "/iam/user_groups", json={"name": "X", "policies": [inline_scope]}).status_code == 400
    assert "X" not in sandbox.state.user_groups_by_name()


def test_put_replaces_policies_keeping_named_ids(api, sandbox):
    rg = account_rg(api)
    created = api.ok("POST", "/iam/user_groups", json={"name": "Ops", "policies": [policy(pg_id(sandbox, "DNS"), rg), policy(pg_id(sandbox, "Billing"), rg)]})["result"]
    assert created["created_on"] == created["modified_on"]
    first = created["policies"][0]
    assert first["permission_groups"][0]["name"] == "DNS" and first["resource_groups"][0]["scope"]["objects"] == [{"key": "*"}]
    time.sleep(0.001)
    # The schema requires `id` on every PUT policy: without one the whole write is refused.
    missing = api("PUT", f"/iam/user_groups/{created['id']}", json={"policies": [policy(pg_id(sandbox, "Firewall"), rg)]})
    assert missing.status_code == 400 and error_code(missing) == 1001 and "id" in missing.json()["errors"][0]["message"]
    for bad in ("not-hex", 7, None, "A" * 31):
        assert api("PUT", f"/iam/user_groups/{created['id']}", json={"policies": [policy(pg_id(sandbox, "DNS"), rg, id=bad)]}).status_code == 400
    unknown = "c" * 32  # well formed but not the group's: a new policy, with an id the server mints
    updated = api.ok("PUT", f"/iam/user_groups/{created['id']}", json={"policies": [
        policy(pg_id(sandbox, "DNS"), rg, id=first["id"]),
        policy(pg_id(sandbox, "Firewall"), rg, id=unknown),
    ]})["result"]
    assert [p["permission_groups"][0]["name"] for p in updated["policies"]] == ["DNS", "Firewall"]
    assert updated["policies"][0]["id"] == first["id"]
    assert updated["policies"][1]["id"] not in {p["id"] for p in created["policies"]} | {unknown}
    assert updated["modified_on"] > created["modified_on"] and updated["created_on"] == created["created_on"]
    assert updated["name"] == "Ops"
    cleared = api.ok("PUT", f"/iam/user_groups/{created['id']}", json={"policies": []})["result"]
    assert cleared["policies"] == []
    renamed = api.ok("PUT", f"/iam/user_groups/{created['id']}", json={"name": "Operations"})["result"]
    assert renamed["name"] == "Operations" and api.ok("GET", "/iam/user_groups?name=Ops")["result"] == []
    assert api.ok("DELETE", f"/iam/user_groups/{created['id']}")["result"] == {"id": created["id"]}
    assert api("GET", f"/iam/user_groups/{created['id']}").status_code == 404


def test_resource_group_crud_and_in_use_guard(api, sandbox):
    rg = account_rg(api)
    assert api.ok("GET", f"/iam/resource_groups?name=com.cloudflare.api.account.{sandbox.account_id}")["result"][0]["id"] == rg
    assert api.ok("PUT", f"/iam/resource_groups/{rg}", json={"name": "Whole account"})["result"]["name"] == "Whole account"
    assert api("POST", "/iam/resource_groups", json={"name": "bad", "scope": {"key": "nope", "objects": []}}).status_code == 400
    group = api.ok("POST", "/iam/user_groups", json={"name": "Uses it", "policies": [policy(pg_id(sandbox, "DNS"), rg)]})["result"]
    assert api("DELETE", f"/iam/resource_groups/{rg}").status_code == 400
    api.ok("DELETE", f"/iam/user_groups/{group['id']}")
    assert api.ok("DELETE", f"/iam/resource_groups/{rg}")["result"] == {"id": rg}


# ---- user group members ----------------------------------------------------------------------


def test_members_post_adds_put_replaces_delete_returns_member(api, sandbox):
    group = api.ok("POST", "/iam/user_groups", json={"name": "Crew"})["result"]["id"]
    ids = list(sandbox.state.members)[:4]
    path = f"/iam/user_groups/{group}/members"
    added = api.ok("POST", path, json=[{"id": ids[0]}, {"id": ids[1]}])["result"]
    assert [m["id"] for m in added] == ids[:2] and set(added[0]) == {"id", "email", "status"}
    again = api.ok("POST", path, json=[{"id": ids[1]}, {"id": ids[2]}])["result"]  # existing member: no-op
    assert [m["id"] for m in again] == ids[1:3]
    assert set(sandbox.state.group_member_ids(group)) == set(ids[:3])
    replaced = api.ok("PUT", path, json=[{"id": ids[3]}, {"id": ids[0]}])["result"]
    assert {m["id"] for m in replaced} == {ids[0], ids[3]} == set(sandbox.state.group_member_ids(group))
    one = api.ok("GET", f"{path}/{ids[3]}")["result"]
    assert one["user"]["email"] == one["email"] and one["created_at"]
    removed = api.ok("DELETE", f"{path}/{ids[3]}")["result"]
    assert removed["id"] == ids[3] and removed["email"] == sandbox.state.members[ids[3]]["email"]
    assert api("GET", f"{path}/{ids[3]}").status_code == 404
    assert api("DELETE", f"{path}/{ids[3]}").status_code == 404
    listed = api.ok("GET", path)
    assert [m["id"] for m in listed["result"]] == [ids[0]] and listed["result_info"]["total_count"] == 1


def test_member_bodies_must_be_bare_arrays_of_account_members(api, sandbox):
    group = api.ok("POST", "/iam/user_groups", json={"name": "Crew"})["result"]["id"]
    member = next(iter(sandbox.state.members))
    path = f"/iam/user_groups/{group}/members"
    assert api("POST", path, json={"members": [{"id": member}]}).status_code == 400
    assert api("PUT", path, json={"id": member}).status_code == 400
    assert api("POST", path, json=[member]).status_code == 400
    assert api("POST", path, json=[{"id": "f" * 32}]).status_code == 400
    assert api("POST", f"/iam/user_groups/{'e' * 32}/members", json=[{"id": member}]).status_code == 404
    assert sandbox.state.group_member_ids(group) == []


def test_group_member_list_is_sorted_by_email_and_paged(api, sandbox):
    group = api.ok("POST", "/iam/user_groups", json={"name": "Crew"})["result"]["id"]
    ids = list(sandbox.state.members)[:12]
    api.ok("PUT", f"/iam/user_groups/{group}/members", json=[{"id": i} for i in reversed(ids)])
    emails = sorted(sandbox.state.members[i]["email"] for i in ids)
    page = api.ok("GET", f"/iam/user_groups/{group}/members?per_page=5&page=2")
    assert [m["email"] for m in page["result"]] == emails[5:10] and page["result_info"]["total_count"] == 12
    desc = api.ok("GET", f"/iam/user_groups/{group}/members?direction=desc&per_page=3")["result"]
    assert [m["email"] for m in desc] == emails[::-1][:3]
    assert api.ok("GET", f"/iam/user_groups/{group}/members?page=9")["result"] == []


def test_scim_managed_group_is_locked_except_policies(api, sandbox):
    group = sandbox.state.user_groups_by_name()["Security Team"]
    path = f"/iam/user_groups/{group['id']}"
    member = next(iter(sandbox.state.members))
    for method, suffix, body in (
        ("PUT", "", {"name": "Renamed"}),
        ("POST", "/members", [{"id": member}]),
        ("PUT", "/members", []),
        ("DELETE", f"/members/{group['members'][0]}", None),
        ("DELETE", "", None),
    ):
        response = api(method, path + suffix, json=body)
        assert response.status_code == 400, (method, suffix)
        assert "SCIM" in response.json()["errors"][0]["message"]
    rg = account_rg(api)
    updated = api.ok("PUT", path, json={"name": "Security Team", "policies": [policy(pg_id(sandbox, "Firewall"), rg, id="d" * 32)]})["result"]
    assert updated["policies"][0]["permission_groups"][0]["name"] == "Firewall"
    assert sandbox.state.user_groups_by_name()["Security Team"]["members"] == group["members"]


# ---- auth and routing --------------------------------------------------------------------------


def test_auth_errors(sandbox):
    base = f"{sandbox.base_url}/accounts/{sandbox.account_id}/iam/user_groups"
    for headers in ({"Authorization": "Bearer wrong"}, {"X-Auth-Email": "a@example.com", "X-Auth-Key": "k" * 37}):
        response = requests.get(base, headers=headers, timeout=5)
        assert response.status_code == 403 and error_code(response) == 10000
        assert response.json()["errors"][0]["message"] == "Authentication error"
    good = {"Authorization": f"Bearer {sandbox.token}"}
    foreign = requests.get(f"{sandbox.base_url}/accounts/{'a' * 32}/members", headers=good, timeout=5)
    assert foreign.status_code == 403 and error_code(foreign) == 10000


@pytest.mark.parametrize("path", ["/iam/user_groups", "/scim/v2/Users"])
def test_missing_and_malformed_authorization_headers_are_400_at_the_edge(sandbox, path):
    url = f"{sandbox.base_url}/accounts/{sandbox.account_id}{path}"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 400 and missing.headers["Content-Type"].startswith("application/json")
    assert missing.json()["errors"] == [{"code": 9106, "message": "Missing X-Auth-Key, X-Auth-Email or Authorization headers"}]
    for value in (sandbox.token, f"Token {sandbox.token}", "Bearer", "Bearer  ", "Bearer a.b.c", 'Bearer "quoted"'):
        response = requests.get(url, headers={"Authorization": value}, timeout=5)
        assert response.status_code == 400, value
        (error,) = response.json()["errors"]
        assert error["code"] == 6003 and error["message"] == "Invalid request headers"
        assert error["error_chain"] == [{"code": 6111, "message": "Invalid format for Authorization header"}]
    assert not sandbox.state.audit_entries()


def _no_route(response, path):
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"] == [
        {"code": 7003, "message": f"Could not route to /client/v4{path}, perhaps your object identifier is invalid?"},
        {"code": 7000, "message": "No route for that URI"},
    ]


def test_unknown_routes_and_malformed_ids_do_not_route(api, sandbox):
    acct = f"/accounts/{sandbox.account_id}"
    group = api.ok("POST", "/iam/user_groups", json={"name": "Crew"})["result"]["id"]
    member = next(iter(sandbox.state.members))
    _no_route(api("GET", "/nothing/here"), acct + "/nothing/here")
    _no_route(api("PATCH", "/iam/user_groups", json={}), acct + "/iam/user_groups")  # known path, other method
    for path in (
        "/accounts/not-an-account/members",
        f"{acct}/iam/user_groups/Crew",
        f"{acct}/iam/user_groups/{group}/members/{member[:31]}",
        f"{acct}/iam/resource_groups/{'g' * 32}",
        f"{acct}/iam/permission_groups/{'1' * 33}",
        f"{acct}/members/ben.brandt@acme-corp.example",
        f"{acct}/roles/admin",
    ):
        _no_route(api("GET", sandbox.base_url + path), path)
    _no_route(api("DELETE", f"/iam/user_groups/{group}/members/x"), f"{acct}/iam/user_groups/{group}/members/x")
    # A well-formed id that names nothing routes, and is then not found.
    assert api("GET", f"/iam/user_groups/{'0' * 32}").status_code == 404
    # SCIM ids are not hex (system groups are `cloudflare-v1-...`): SCIM answers its own 404.
    assert api("GET", "/scim/v2/Groups/missing").status_code == 404


def test_token_verify_depends_on_who_owns_the_token(sandbox):
    good = {"Authorization": f"Bearer {sandbox.token}"}
    account = requests.get(f"{sandbox.base_url}/accounts/{sandbox.account_id}/tokens/verify", headers=good, timeout=5)
    assert account.status_code == 200
    assert account.json()["result"]["status"] == "active"
    assert account.json()["messages"] == [{"code": 10000, "message": "This API Token is valid and active"}]
    user = requests.get(f"{sandbox.base_url}/user/tokens/verify", headers=good, timeout=5)
    assert user.status_code == 401 and error_code(user) == 1000
    bad = requests.get(f"{sandbox.base_url}/accounts/{sandbox.account_id}/tokens/verify", headers={"Authorization": "Bearer x"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["errors"][0]["message"] == "Invalid API Token"
    with Sandbox(token="user-token-1", token_kind="user", rate_limit=None) as sb:
        headers = {"Authorization": "Bearer user-token-1"}
        assert requests.get(f"{sb.base_url}/user/tokens/verify", headers=headers, timeout=5).status_code == 200
        assert requests.get(f"{sb.base_url}/accounts/{sb.account_id}/tokens/verify", headers=headers, timeout=5).status_code == 401


def test_every_response_has_a_unique_ray_and_calls_are_recorded(api, sandbox):
    rays = {api("GET", "/roles").headers["cf-ray"] for _ in range(5)}
    rays.add(api("GET", "/nope").headers["cf-ray"])
    assert len(rays) == 6 and all(r.endswith("-SBX") for r in rays)
    assert sandbox.calls[-1] == ("GET", f"/client/v4/accounts/{sandbox.account_id}/nope", 400)
    sandbox.reset_calls()
    assert sandbox.calls == []


def test_keep_alive_calls_do_not_stall(api):
    api.ok("GET", "/roles")
    started = time.perf_counter()
    for _ in range(40):
        api.ok("GET", "/iam/user_groups")
    # 40 calls at the ~40 ms Nagle/delayed-ACK stall would take 1.6 s.
    assert time.perf_counter() - started < 0.8


# ---- rate limit --------------------------------------------------------------------------------


def test_rate_limit_headers_and_429():
    with Sandbox(rate_limit=(3, 60)) as sb:
        api = Api(sb)
        remaining = []
        for _ in range(3):
            response = api("GET", "/roles")
            assert response.status_code == 200
            assert response.headers["Ratelimit-Policy"] == '"burst";q=3;w=60'
            remaining.append(response.headers["Ratelimit"])
        assert [r.split(";")[1] for r in remaining] == ["r=2", "r=1", "r=0"]
        assert all(r.startswith('"default";') and r.endswith(";t=60") for r in remaining)
        limited = api("GET", "/roles")
        assert limited.status_code == 429 and error_code(limited) == 971
        assert limited.json()["errors"][0]["message"] == "Please wait and consider throttling your request speed"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "r=0" in limited.headers["Ratelimit"]


def test_rate_limiter_window_slides():
    now = [100.0]
    limiter = RateLimiter(2, 10, clock=lambda: now[0])
    assert limiter.hit("t") == (True, 1, 10)
    now[0] = 104.2
    assert limiter.hit("t") == (True, 0, 6)
    assert limiter.hit("t") == (False, 0, 6)
    assert limiter.hit("other")[0] is True
    now[0] = 110.0
    assert limiter.hit("t") == (True, 0, 5)  # the first hit left the window


# ---- faults ---------------------------------------------------------------------------------------


def test_injected_5xx_is_not_applied(api, sandbox):
    sandbox.inject("POST", r"/iam/user_groups$", "5xx")
    response = api("POST", "/iam/user_groups", json={"name": "Ops"})
    assert response.status_code in (500, 502, 503) and response.json()["success"] is False
    assert "Ops" not in sandbox.state.user_groups_by_name()
    assert api("POST", "/iam/user_groups", json={"name": "Ops"}).status_code == 200  # only once


def test_lost_response_is_applied_and_connection_dropped(api, sandbox):
    sandbox.inject("post", r"^/accounts/\w+/iam/user_groups$", "lose")
    with pytest.raises(requests.ConnectionError):
        api("POST", "/iam/user_groups", json={"name": "Ops"})
    assert "Ops" in sandbox.state.user_groups_by_name()
    assert sandbox.calls[-1][0] == "POST" and sandbox.calls[-1][2] is None
    assert api("GET", "/iam/user_groups?name=Ops").json()["result"][0]["name"] == "Ops"


def test_timeout_holds_then_drops_without_applying(sandbox, api):
    sandbox.timeout_seconds = 0.2
    sandbox.inject("*", "user_groups", "timeout")
    started = time.perf_counter()
    with pytest.raises(requests.ConnectionError):
        api("POST", "/iam/user_groups", json={"name": "Ops"})
    assert time.perf_counter() - started >= 0.2
    assert "Ops" not in sandbox.state.user_groups_by_name()


def test_injected_429_carries_retry_after(api, sandbox):
    sandbox.inject("GET", "/roles", "429", times=2)
    assert [api("GET", "/roles").status_code for _ in range(3)] == [429, 429, 200]
    assert sandbox.calls[0][2] == 429


def test_random_faults_are_deterministic_per_seed():
    def statuses(seed):
        with Sandbox(rate_limit=None, fail_5xx=0.3, random_seed=seed) as sb:
            api = Api(sb)
            return [api("GET", "/roles").status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert {s for s in first} & {500, 502, 503} and 200 in first
    assert first != statuses(8)


def test_fault_arguments_are_validated():
    with pytest.raises(ValueError):
        Faults(fail_5xx=1.5)
    with pytest.raises(ValueError):
        Faults().inject("GET", "x", "explode")


# ---- audit log --------------------------------------------------------------------------------


def test_writes_are_recorded_in_the_audit_log(api, sandbox):
    group = api.ok("POST", "/iam/user_groups", json={"name": "Ops"})["result"]["id"]
    api.ok("PUT", f"/iam/user_groups/{group}", json={"name": "Ops 2"})
    api("POST", "/iam/user_groups", json={"name": "CF nope"})  # failed writes are not audited
    api.ok("POST", f"/iam/user_groups/{group}/members", json=[{"id": next(iter(sandbox.state.members))}])
    api.ok("DELETE", f"/iam/user_groups/{group}")
    logs = api.ok("GET", "/audit_logs")
    actions = [(e["action"]["type"], e["resource"]["id"]) for e in logs["result"]]
    assert actions == [("delete", group), ("create", group), ("update", group), ("create", group)]
    update = logs["result"][2]
    assert '"Ops"' in update["oldValue"] and '"Ops 2"' in update["newValue"]
    assert update["resource"] == {"id": group} and update["owner"]["id"] == sandbox.account_id
    assert update["actor"]["type"] == "user" and update["action"]["result"] is True
    assert update["metadata"] == {}  # no invented fields: v1 publishes no metadata for these objects
    asc = api.ok("GET", "/audit_logs?direction=asc&action.type=create")["result"]
    assert [e["newValue"].startswith("[") for e in asc] == [False, True]  # the group, then its member list
    assert api.ok("GET", "/audit_logs?since=2999-01-01")["result"] == []
    assert len(api.ok("GET", "/audit_logs?before=2999-01-01T00:00:00Z&per_page=2")["result"]) == 2


# ---- SCIM ---------------------------------------------------------------------------------------


def test_scim_users_list_envelope_paging_and_filter(api, sandbox):
    page = api("GET", "/scim/v2/Users?startIndex=3&count=2")
    assert page.headers["Content-Type"].startswith("application/scim+json")
    body = page.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert body["startIndex"] == 3 and body["itemsPerPage"] == 2 == len(body["Resources"])
    assert body["totalResults"] == len(sandbox.state.scim_users)
    assert [u["id"] for u in body["Resources"]] == list(sandbox.state.scim_users)[2:4]
    user = body["Resources"][0]
    assert all(isinstance(g, str) for g in user["groups"]) and user["emails"][0]["value"] == user["userName"]
    found = api.ok("GET", '/scim/v2/Users?filter=userName eq "DANA.WHITFIELD@acme-corp.example"')
    assert found["totalResults"] == 1 and found["Resources"][0]["userName"] == "Dana.Whitfield@Acme-Corp.example"
    assert api.ok("GET", '/scim/v2/Users?filter=userName eq "nobody@example.com"')["Resources"] == []
    assert api.ok("GET", "/scim/v2/Users?startIndex=0&count=1")["startIndex"] == 1
    past = api.ok("GET", "/scim/v2/Users?startIndex=999")
    assert past["Resources"] == [] and past["itemsPerPage"] == 0


@pytest.mark.parametrize("query", ['filter=emails eq "a@b.c"', 'filter=userName co "a"', "filter=active", "count=lots"])
def test_scim_unsupported_filters_are_scim_errors(api, query):
    response = api("GET", f"/scim/v2/Users?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["status"] == "400"
    if query.startswith("filter"):
        assert body["scimType"] == "invalidFilter"


def test_scim_count_is_clamped_to_max_results():
    with Sandbox(seed=generate_seed(groups=30, members=250), rate_limit=None) as sb:
        body = Api(sb).ok("GET", "/scim/v2/Users?count=1000")
        assert body["itemsPerPage"] == 100 and body["totalResults"] > 100


def test_scim_groups_system_and_custom(api, sandbox):
    listed = api.ok("GET", "/scim/v2/Groups")
    ids = [g["id"] for g in listed["Resources"]]
    system = len(sandbox.state.scim_groups)  # 77 in the demo account: fits one page of 100
    pushed = [g["id"] for g in sandbox.state.user_groups.values() if g["scim_managed"]]
    # System groups, then the groups the IdP pushed; a User Group made in Cloudflare is no SCIM group.
    assert ids[:system] == list(sandbox.state.scim_groups) and ids[system:] == pushed and pushed
    native = next(g for g in sandbox.state.user_groups.values() if not g["scim_managed"])
    assert api("GET", f"/scim/v2/Groups/{native['id']}").status_code == 404
    assert all("members" not in g for g in listed["Resources"])
    system = api.ok("GET", f"/scim/v2/Groups/{ids[0]}")
    assert system["id"].startswith("cloudflare-v1-") and "members" not in system
    team = sandbox.state.user_groups_by_name()["Security Team"]
    custom = api.ok("GET", f"/scim/v2/Groups/{team['id']}")
    assert custom["displayName"] == "Security Team" and len(custom["members"]) == len(team["members"])
    display = custom["members"][0]["display"]
    assert sandbox.state.member_by_email(display)["user"]["id"] == custom["members"][0]["value"]
    # a SCIM user's groups list their custom groups too
    user = api.ok("GET", f"/scim/v2/Users/{custom['members'][0]['value']}")
    assert team["id"] in user["groups"]
    name = sandbox.state.scim_groups[ids[1]]["displayName"]
    filtered = api.ok("GET", f'/scim/v2/Groups?filter=displayName eq "{name}"')
    assert [g["id"] for g in filtered["Resources"]] == [ids[1]]
    assert api("GET", "/scim/v2/Groups/cloudflare-v1-nope").status_code == 404


def test_scim_group_push_creates_a_locked_user_group(api, sandbox):
    tags = [u["user"]["id"] for u in list(sandbox.state.members.values())[:2]]
    cf = api("POST", "/scim/v2/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "CF-Admins"})
    assert cf.status_code == 400 and cf.json()["status"] == "400"
    created = api("POST", "/scim/v2/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Cloudflare-Admins", "externalId": "okta-1"})
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert sandbox.state.user_group(group_id)["scim_managed"] is True
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": t} for t in tags]}]}
    patched = api.ok("PATCH", f"/scim/v2/Groups/{group_id}", json=patch)
    assert [m["value"] for m in patched["members"]] == tags
    remove = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": f'members[value eq "{tags[0]}"]'}]}
    assert [m["value"] for m in api.ok("PATCH", f"/scim/v2/Groups/{group_id}", json=remove)["members"]] == [tags[1]]
    assert api("POST", f"/iam/user_groups/{group_id}/members", json=[{"id": next(iter(sandbox.state.members))}]).status_code == 400
    assert api("DELETE", f"/scim/v2/Groups/{next(iter(sandbox.state.scim_groups))}").status_code == 400
    assert api("DELETE", f"/scim/v2/Groups/{group_id}").status_code == 204
    assert sandbox.state.user_group(group_id) is None


def test_scim_user_provisioning_and_deprovisioning(api, sandbox):
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "new.hire@acme-corp.example",
            "emails": [{"value": "new.hire@acme-corp.example", "primary": True, "type": "work"}], "active": True}
    created = api("POST", "/scim/v2/Users", json=body)
    assert created.status_code == 201
    assert sandbox.state.member_by_email("new.hire@acme-corp.example")["user"]["id"] == created.json()["id"]
    assert api("POST", "/scim/v2/Users", json=body).json()["scimType"] == "uniqueness"
    off = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert api.ok("PATCH", f"/scim/v2/Users/{created.json()['id']}", json=off)["active"] is False
    assert sandbox.state.member_by_email("new.hire@acme-corp.example") is None
    on = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert api.ok("PATCH", f"/scim/v2/Users/{created.json()['id']}", json=on)["active"] is True
    assert sandbox.state.member_by_email("new.hire@acme-corp.example")["user"]["id"] == created.json()["id"]


# ---- seeds -----------------------------------------------------------------------------------------


def test_demo_seed_has_the_awkward_cases():
    seed = demo_seed()
    acct = seed["account"]["id"]
    names = [g["displayName"] for g in seed["scim_groups"]]
    assert len(names) == 77 and all(g["id"].startswith("cloudflare-v1-") for g in seed["scim_groups"])
    assert f"CF-{acct} - Super Administrator - All Privileges" in names
    assert f"CF-{acct}-DNS" in names
    assert any("\u00a0" in n or "  " in n or "\t" in n for n in names)
    assert any(n.startswith("cf-") and acct.upper() in n for n in names)
    assert sum(1 for n in names if acct not in n.lower()) == 1  # the foreign account
    member_emails = {m["email"].lower() for m in seed["members"]}
    assert any(u["userName"].lower() not in member_emails for u in seed["scim_users"])
    assert any(m["status"] == "pending" for m in seed["members"])
    assert {g["name"] for g in seed["user_groups"]} & {pg["name"] for pg in seed["permission_groups"]}
    assert any(pg["meta"].get("deprecated") for pg in seed["permission_groups"])
    assert any(pg["meta"]["scopes"] == "com.cloudflare.api.account.zone" for pg in seed["permission_groups"])
    assert demo_seed() == seed


def test_generated_seed_is_large_fast_and_deterministic():
    started = time.perf_counter()
    big = generate_seed()
    assert time.perf_counter() - started < 5
    account_scoped = [pg for pg in big["permission_groups"] if pg["meta"]["scopes"] == "com.cloudflare.api.account"]
    assert len(account_scoped) == len(big["scim_groups"]) == 2001 and len(big["members"]) == 50000  # + 1 deprecated
    sizes = {}
    for user in big["scim_users"]:
        for group in user["groups"]:
            sizes[group] = sizes.get(group, 0) + 1
    assert max(sizes.values()) > 20 * min(sizes.values())  # long-tailed membership
    assert generate_seed(50, 300, random_seed=3) == generate_seed(50, 300, random_seed=3)
    assert generate_seed(50, 300, random_seed=3) != generate_seed(50, 300, random_seed=4)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("account"), "seed.account"),
        (lambda s: s["account"].update(id="xyz"), "seed.account.id"),
        (lambda s: s["members"][0].update(roles=["nope"]), "seed.members[0].roles"),
        (lambda s: s["user_groups"][0]["members"].append("nope"), "seed.user_groups[0].members"),
        (lambda s: s["scim_users"][0]["groups"].append("nope"), "seed.scim_users[0].groups"),
        (lambda s: s.update(roles={}), "seed.roles"),
    ],
)
def test_malformed_seeds_are_rejected_with_a_path(mutate, message):
    seed = demo_seed()
    mutate(seed)
    with pytest.raises(SeedError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Sandbox(seed=seed)


def test_snapshot_round_trips(api, sandbox):
    api.ok("POST", "/iam/user_groups", json={"name": "Ops"})
    snapshot = sandbox.state.snapshot()
    again = Sandbox(seed=snapshot, rate_limit=None)
    assert again.state.snapshot() == snapshot
    snapshot["user_groups"].clear()
    assert "Ops" in sandbox.state.user_groups_by_name()  # deep copy


def test_scim_whole_group_replace_and_put_as_idps_send_them(api, sandbox):
    tags = [m["user"]["id"] for m in list(sandbox.state.members.values())[:3]]
    group = api("POST", "/scim/v2/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Cloudflare - DNS"}).json()
    whole = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": group["id"], "displayName": "Cloudflare - DNS admins",
             "externalId": "ak-uuid-1", "members": [{"value": tags[0]}]}
    patched = api.ok("PATCH", f"/scim/v2/Groups/{group['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                                       "Operations": [{"op": "replace", "value": whole}]})
    assert patched["displayName"] == "Cloudflare - DNS admins" and patched["externalId"] == "ak-uuid-1"
    assert [m["value"] for m in patched["members"]] == [tags[0]]
    put = api.ok("PUT", f"/scim/v2/Groups/{group['id']}", json={**whole, "members": [{"value": t} for t in tags[1:]]})
    assert [m["value"] for m in put["members"]] == tags[1:]
    assert sandbox.state.user_groups_by_name()["Cloudflare - DNS admins"]["scim_managed"] is True
    cf = api("PUT", f"/scim/v2/Groups/{group['id']}", json={**whole, "displayName": "CF-DNS"})
    assert cf.status_code == 400 and cf.json()["scimType"] == "invalidValue"


def test_scim_system_groups_accept_only_membership_changes(api, sandbox):
    system_id = next(iter(sandbox.state.scim_groups))
    user_id = next(u for u, rec in sandbox.state.scim_users.items() if system_id not in rec["groups"])
    add = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]}
    api.ok("PATCH", f"/scim/v2/Groups/{system_id}", json=add)
    assert system_id in api.ok("GET", f"/scim/v2/Users/{user_id}")["groups"]
    rename = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]}
    response = api("PATCH", f"/scim/v2/Groups/{system_id}", json=rename)
    assert response.status_code == 400 and response.json()["scimType"] == "mutability"
    remove = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": f'members[value eq "{user_id}"]'}]}
    api.ok("PATCH", f"/scim/v2/Groups/{system_id}", json=remove)
    assert system_id not in api.ok("GET", f"/scim/v2/Users/{user_id}")["groups"]


def test_a_policy_id_named_twice_is_kept_once(api, sandbox):
    rg = account_rg(api)
    dns = pg_id(sandbox, "DNS")
    group = api.ok("POST", "/iam/user_groups", json={"name": "Ops", "policies": [policy(dns, rg)]})["result"]
    kept = group["policies"][0]["id"]
    updated = api.ok("PUT", f"/iam/user_groups/{group['id']}", json={"policies": [policy(dns, rg, id=kept), policy(dns, rg, id=kept)]})["result"]
    ids = [p["id"] for p in updated["policies"]]
    assert ids[0] == kept and ids[1] != kept


def test_chunked_request_bodies_are_read(api, sandbox):
    response = api("POST", "/iam/user_groups", data=iter([b'{"name": ', b'"Chunked"}']), headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and "Chunked" in sandbox.state.user_groups_by_name()


def test_ids_stay_unique_when_a_snapshot_is_served_again(api, sandbox):
    first = api.ok("POST", "/iam/user_groups", json={"name": "Ops"})["result"]["id"]
    with Sandbox(seed=sandbox.state.snapshot(), rate_limit=None) as again:  # same random seed
        second = Api(again).ok("POST", "/iam/user_groups", json={"name": "Ops 2"})["result"]["id"]
        assert second != first and len(again.state.user_groups) == len(sandbox.state.user_groups) + 1


def test_empty_query_values_count_as_absent(api, sandbox):
    body = api.ok("GET", "/iam/user_groups?name=&fuzzyName=")
    assert body["result_info"]["total_count"] == len(sandbox.state.user_groups) == len(body["result"])


def test_latency_counts_from_the_request_and_includes_the_sandboxs_own_work():
    with Sandbox(seed=demo_seed(), rate_limit=None, latency_ms=200) as sb:
        route = sb._route

        def slow_route(*args, **kwargs):
            time.sleep(0.15)  # the emulator busy (on a machine it shares with its client)
            return route(*args, **kwargs)

        sb._route = slow_route
        api = Api(sb)
        api.ok("GET", "/roles")  # connect first: time one answer, not a handshake
        started = time.monotonic()
        api.ok("GET", "/roles")
        elapsed = time.monotonic() - started
    # Added after the work, the latency made this answer 350 ms: the emulator measured, not the client.
    assert 0.2 <= elapsed < 0.3, elapsed
