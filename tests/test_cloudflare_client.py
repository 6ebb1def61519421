"""CloudflareClient: envelopes, errors, request shapes and pagination cost, over a canned transport."""

import json
import math
import threading
import time

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from migrate.cloudflare import CloudflareClient, scim_is_last_page, v4_is_last_page
from migrate.errors import CloudflareError, OutcomeUnknown, TokenError
from migrate.http import RateLimiter

ACCT = "0123456789abcdef0123456789abcdef"
A = f"/accounts/{ACCT}"


def make_response(status=200, body=None, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response.headers = CaseInsensitiveDict(headers or {})
    return response


def ok(result, result_info=None, ray="ray-1"):
    body = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return make_response(200, body, {"cf-ray": ray})


def fail(status, code, message, ray="ray-err"):
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return make_response(status, body, {"cf-ray": ray})


class FakeHttp:
    """Stands in for HttpClient: answers from a handler, records each call."""

    base_url = "https://api.cloudflare.com/client/v4"

    def __init__(self, handler):
        self.handler = handler
        self.sent = []

    def request(self, method, path, *, params=None, json=None):
        params = {k: v for k, v in (params or {}).items() if v is not None}
        self.sent.append((method, path, params, json))
        return self.handler(method, path, params, json)

    def redact(self, text):
        return text


def client_with(handler):
    http = FakeHttp(handler)
    return CloudflareClient(http, ACCT), http


def v4_collection(items, max_per_page, with_info=True):
    """A handler serving `items` the way Cloudflare pages them (result: [] past the end)."""

    def handler(method, path, params, body):
        per_page = min(int(params.get("per_page", 20)), max_per_page)
        page = int(params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        info = None
        if with_info:
            info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
                    "total_pages": max(1, math.ceil(len(items) / per_page))}
        return ok(chunk, info)

    return handler


def scim_collection(resources, honour_total=True):
    def handler(method, path, params, body):
        start, count = int(params["startIndex"]), int(params["count"])
        chunk = resources[start - 1 : start - 1 + count]
        envelope = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "startIndex": start, "itemsPerPage": len(chunk), "Resources": chunk}
        if honour_total:
            envelope["totalResults"] = len(resources)
        return make_response(200, envelope, {"Content-Type": "application/scim+json"})

    return handler


# -- pure page-end rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info, page, seen, page_len, per_page, last",
    [
        ({"total_count": 120}, 2, 100, 50, 50, False),
        ({"total_count": 120}, 3, 120, 20, 50, True),
        ({"total_count": 100}, 2, 100, 50, 50, True),  # exact multiple: no extra request
        ({"total_pages": 3}, 3, 150, 50, 50, True),
        ({"total_pages": 3}, 2, 100, 50, 50, False),
        ({"per_page": 20}, 1, 20, 20, 50, False),  # the server clamped per_page: a "short" page is full
        (None, 1, 49, 49, 50, True),  # no result_info: a short page is the last
        (None, 1, 50, 50, 50, False),
    ],
)
def test_v4_is_last_page(info, page, seen, page_len, per_page, last):
    assert v4_is_last_page(info, page, seen, page_len, per_page) is last


def test_scim_is_last_page():
    assert scim_is_last_page({"totalResults": 200}, 201, 100, 100) is True
    assert scim_is_last_page({"totalResults": 201}, 201, 100, 100) is False
    assert scim_is_last_page({}, 101, 100, 100) is False
    assert scim_is_last_page({}, 51, 50, 100) is True


# -- v4 pagination cost --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, suffix, max_per_page",
    [
        ("members", "/members", 50),
        ("roles", "/roles", 50),
        ("permission_groups", "/iam/permission_groups", 50),
        ("user_groups", "/iam/user_groups", 500),
        ("audit_logs", "/audit_logs", 1000),
    ],
)
@pytest.mark.parametrize("n", [0, 1, 40, 50, 51, 100, 1001])
def test_listing_costs_ceil_n_over_the_largest_page(method, suffix, max_per_page, n):
    items = [{"id": f"{i:032x}"} for i in range(n)]
    client, http = client_with(v4_collection(items, max_per_page))
    assert list(getattr(client, method)()) == items
    assert len(http.sent) == max(1, math.ceil(n / max_per_page))
    assert {s[1] for s in http.sent} == {A + suffix}
    assert {s[2]["per_page"] for s in http.sent} == {max_per_page}
    assert [s[2]["page"] for s in http.sent] == list(range(1, len(http.sent) + 1))


def test_listing_without_result_info_stops_on_a_short_page():
    items = [{"id": str(i)} for i in range(120)]
    client, http = client_with(v4_collection(items, 50, with_info=False))
    assert len(list(client.members())) == 120
    assert len(http.sent) == 3


def lying_totals(method, path, params, body):
    """Says 500 members, has 50."""
    if params["page"] == 1:
        return ok([{"id": "a"}] * 50, {"page": 1, "per_page": 50, "count": 50, "total_count": 500})
    return ok([], {"page": 2, "per_page": 50, "count": 0, "total_count": 500})


def test_listing_stops_safely_on_an_empty_page_even_if_totals_lie():
    client, http = client_with(lying_totals)
    assert len(list(client.members())) == 50
    assert len(http.sent) == 2


def test_user_group_members_use_500_per_page():
    items = [{"id": f"m{i}", "email": f"u{i}@example.com"} for i in range(501)]
    client, http = client_with(v4_collection(items, 500))
    assert len(list(client.user_group_members("g1"))) == 501
    assert [(s[1], s[2]["per_page"]) for s in http.sent] == [(A + "/iam/user_groups/g1/members", 500)] * 2


def test_user_groups_filters_use_api_parameter_names():
    client, http = client_with(v4_collection([], 500))
    list(client.user_groups(name="Admins", fuzzy_name="Adm"))
    assert http.sent[0][2] == {"name": "Admins", "fuzzyName": "Adm", "page": 1, "per_page": 500}


def test_audit_logs_format_datetimes():
    import datetime as dt

    client, http = client_with(v4_collection([], 1000))
    list(client.audit_logs(since=dt.datetime(2025, 6, 2, 12, 0), before="2025-12-02T00:00:00Z"))
    assert http.sent[0][2]["since"] == "2025-06-02T12:00:00Z"
    assert http.sent[0][2]["before"] == "2025-12-02T00:00:00Z"


def test_list_accounts_is_paged_at_50():
    accounts = [{"id": f"{i:032x}", "name": f"a{i}"} for i in range(60)]
    client, http = client_with(v4_collection(accounts, 50))
    assert client.list_accounts() == accounts
    assert [(s[1], s[2]["page"]) for s in http.sent] == [("/accounts", 1), ("/accounts", 2)]


# -- SCIM pagination -----------------------------------------------------------------------------


@pytest.mark.parametrize("n, calls", [(0, 1), (5, 1), (100, 1), (101, 2), (250, 3)])
def test_scim_listing_cost_and_start_index(n, calls):
    users = [{"id": f"u{i}", "userName": f"u{i}@example.com"} for i in range(n)]
    client, http = client_with(scim_collection(users))
    assert list(client.scim_users()) == users
    assert len(http.sent) == calls
    assert [s[2]["startIndex"] for s in http.sent] == [1 + 100 * i for i in range(calls)]
    assert {s[2]["count"] for s in http.sent} == {100}


def test_scim_filter_is_passed_through_and_missing_total_uses_short_page():
    groups = [{"id": "cloudflare-v1-x", "displayName": "CF-x - Administrator"}]
    client, http = client_with(scim_collection(groups, honour_total=False))
    assert list(client.scim_groups(filter='displayName eq "CF-x - Administrator"')) == groups
    assert http.sent == [("GET", A + "/scim/v2/Groups",
                          {"startIndex": 1, "count": 100, "filter": 'displayName eq "CF-x - Administrator"'}, None)]


def test_scim_error_envelope_becomes_cloudflare_error():
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404", "detail": "Group not found"}
    client, _ = client_with(lambda *a: make_response(404, body, {"cf-ray": "scim-ray"}))
    with pytest.raises(CloudflareError) as err:
        client.scim_group("nope")
    assert err.value.status == 404 and err.value.ray == "scim-ray"
    assert "Group not found" in str(err.value)


def test_scim_single_objects():
    client, http = client_with(lambda *a: make_response(200, {"id": "u1", "userName": "a@example.com"}))
    assert client.scim_user("u1")["userName"] == "a@example.com"
    client.scim_group("cloudflare-v1-abc")
    assert [s[1] for s in http.sent] == [A + "/scim/v2/Users/u1", A + "/scim/v2/Groups/cloudflare-v1-abc"]


# -- envelope and errors -------------------------------------------------------------------------


def test_envelope_is_unwrapped_and_ray_is_recorded():
    client, _ = client_with(lambda *a: ok({"id": "g1", "name": "Admins"}, ray="8f00-LHR"))
    assert client.user_group("g1") == {"id": "g1", "name": "Admins"}
    assert client.last_ray == "8f00-LHR" and client.last_status == 200


def test_failure_envelope_raises_with_status_codes_and_ray():
    client, _ = client_with(lambda *a: fail(400, 1003, "name cannot start with CF", ray="bad-ray"))
    with pytest.raises(CloudflareError) as err:
        client.create_user_group("CF-nope")
    assert (err.value.status, err.value.codes, err.value.ray) == (400, [1003], "bad-ray")
    assert err.value.method == "POST" and err.value.path == A + "/iam/user_groups"
    assert client.last_ray == "bad-ray" and client.last_status == 400


def test_success_false_with_200_is_still_an_error():
    client, _ = client_with(lambda *a: make_response(200, {"success": False, "errors": [{"code": 9, "message": "x"}],
                                                           "messages": [], "result": None}))
    with pytest.raises(CloudflareError) as err:
        client.account()
    assert err.value.codes == [9]


def test_non_json_success_is_an_error_not_a_crash():
    client, _ = client_with(lambda *a: make_response(200, b"<html>captive portal</html>"))
    with pytest.raises(CloudflareError, match="not a JSON envelope"):
        client.user_group("g")


def test_last_ray_is_per_thread():
    rays = iter(["main-ray", "thread-ray"])
    client, _ = client_with(lambda *a: ok({}, ray=next(rays)))
    client.user_group("g")
    seen = {}

    def other():
        seen["before"] = client.last_ray
        client.user_group("g")
        seen["after"] = client.last_ray

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == {"before": None, "after": "thread-ray"}
    assert client.last_ray == "main-ray"


# -- request shapes ------------------------------------------------------------------------------


def test_write_request_shapes():
    client, http = client_with(lambda method, path, params, body: ok(body if isinstance(body, list) else {"id": "x"}))
    policy = {"access": "allow", "permission_groups": [{"id": "pg"}], "resource_groups": [{"id": "rg"}]}
    client.create_resource_group("acct-wide", f"com.cloudflare.api.account.{ACCT}")
    client.delete_resource_group("rg1")
    client.create_user_group("Admins", policies=[policy])
    client.create_user_group("Empty")
    client.update_user_group("g1", policies=[])
    client.update_user_group("g1", name="Renamed")
    client.delete_user_group("g1")
    assert client.add_user_group_members("g1", ["m1", "m2"]) == [{"id": "m1"}, {"id": "m2"}]
    assert client.replace_user_group_members("g1", []) == []
    client.remove_user_group_member("g1", "m1")
    assert [(m, p, b) for m, p, _, b in http.sent] == [
        ("POST", A + "/iam/resource_groups",
         {"name": "acct-wide", "scope": {"key": f"com.cloudflare.api.account.{ACCT}", "objects": [{"key": "*"}]}}),
        ("DELETE", A + "/iam/resource_groups/rg1", None),
        ("POST", A + "/iam/user_groups", {"name": "Admins", "policies": [policy]}),
        ("POST", A + "/iam/user_groups", {"name": "Empty"}),
        ("PUT", A + "/iam/user_groups/g1", {"policies": []}),  # [] is sent: it clears the policies
        ("PUT", A + "/iam/user_groups/g1", {"name": "Renamed"}),
        ("DELETE", A + "/iam/user_groups/g1", None),
        ("POST", A + "/iam/user_groups/g1/members", [{"id": "m1"}, {"id": "m2"}]),  # bare array
        ("PUT", A + "/iam/user_groups/g1/members", []),  # empty PUT removes everyone: it must be sent
        ("DELETE", A + "/iam/user_groups/g1/members/m1", None),
    ]


def test_adding_nobody_sends_nothing():
    client, http = client_with(lambda *a: pytest.fail("no request expected"))
    assert client.add_user_group_members("g1", iter(())) == []
    assert http.sent == []


def test_resource_groups_is_a_single_page_with_optional_name():
    client, http = client_with(lambda *a: ok([{"id": "rg"}]))
    assert client.resource_groups() == [{"id": "rg"}]
    assert client.resource_groups(name="x") == [{"id": "rg"}]
    assert [s[2] for s in http.sent] == [{}, {"name": "x"}]


def test_ids_are_escaped_in_paths():
    client, http = client_with(lambda *a: ok({}))
    client.user_group("../members")
    assert http.sent[0][1] == A + "/iam/user_groups/..%2Fmembers"


# -- token and account ---------------------------------------------------------------------------


def test_verify_token_prefers_the_account_endpoint():
    client, http = client_with(lambda *a: ok({"id": "t1", "status": "active"}))
    assert client.verify_token() == {"id": "t1", "status": "active", "kind": "account"}
    assert [s[1] for s in http.sent] == [A + "/tokens/verify"]


def test_verify_token_falls_back_to_the_user_endpoint():
    def handler(method, path, params, body):
        if path.startswith("/accounts/"):
            return fail(401, 1000, "Invalid API Token")
        return ok({"id": "t2", "status": "active"})

    client, http = client_with(handler)
    assert client.verify_token()["kind"] == "user"
    assert [s[1] for s in http.sent] == [A + "/tokens/verify", "/user/tokens/verify"]


def test_verify_token_rejected_everywhere_is_a_token_error():
    client, _ = client_with(lambda *a: fail(401, 1000, "Invalid API Token"))
    with pytest.raises(TokenError, match="CLOUDFLARE_API_TOKEN"):
        client.verify_token()


@pytest.mark.parametrize("status", ["expired", "disabled"])
def test_verify_token_inactive_is_a_token_error(status):
    client, _ = client_with(lambda *a: ok({"id": "t", "status": status}))
    with pytest.raises(TokenError, match=status):
        client.verify_token()


def test_verify_token_does_not_mask_outages():
    client, _ = client_with(lambda *a: fail(503, 10000, "down"))
    with pytest.raises(CloudflareError):
        client.verify_token()


@pytest.mark.parametrize("status", [403, 404])
def test_account_not_visible_is_a_token_error_naming_the_fix(status):
    client, _ = client_with(lambda *a: fail(status, 9109, "Unauthorized"))
    with pytest.raises(TokenError) as err:
        client.account()
    assert str(err.value) == f"token cannot see account {ACCT}: check --account / token scope"


def test_connect_builds_a_real_http_client():
    client = CloudflareClient.connect("https://api.cloudflare.com/client/v4/", "abc123", ACCT, max_retries=1)
    assert client.http.base_url == "https://api.cloudflare.com/client/v4"
    assert client.http.max_retries == 1
    assert "abc123" not in repr(client)


# -- against the sandbox: faults and real pagination cost ----------------------------------------

def sandbox_client(sb, clock, **kwargs):
    kwargs.setdefault("timeout", (2.0, 5.0))
    return CloudflareClient.connect(
        sb.base_url, sb.token, sb.account_id, sleep=clock.sleep,
        limiter=RateLimiter(clock=clock, sleep=clock.sleep), **kwargs,
    )


def statuses(sb, method, suffix):
    return [status for m, path, status in sb.calls if m == method and path.endswith(suffix)]


def test_sandbox_429_waits_retry_after_and_succeeds(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    sandbox.inject("GET", r"/members$", "429")
    assert len(list(client.members())) == 47
    assert statuses(sandbox, "GET", "/members") == [429, 200]
    assert clock.sleeps == [1.0]  # the sandbox's Retry-After


def test_sandbox_5xx_is_retried_for_get_put_and_delete(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    group = client.create_user_group("Retry Me")
    gid = group["id"]
    for method in ("GET", "PUT", "DELETE"):
        sandbox.inject(method, rf"/iam/user_groups/{gid}$", "5xx")
    assert client.user_group(gid)["name"] == "Retry Me"
    assert client.update_user_group(gid, name="Retried")["name"] == "Retried"
    assert client.delete_user_group(gid)["id"] == gid
    for method in ("GET", "PUT", "DELETE"):
        first, second = statuses(sandbox, method, f"/iam/user_groups/{gid}")
        assert first >= 500 and second == 200
    assert list(client.user_groups(name="Retried")) == []


def test_sandbox_lost_post_is_outcome_unknown_and_never_duplicated(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    sandbox.inject("POST", r"/iam/user_groups$", "lose")
    with pytest.raises(OutcomeUnknown):
        client.create_user_group("Exactly Once")
    assert statuses(sandbox, "POST", "/iam/user_groups") == [None]  # sent once, answer lost
    assert [g["name"] for g in client.user_groups(name="Exactly Once")] == ["Exactly Once"]


def test_sandbox_lost_member_post_is_not_resent(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    gid = client.create_user_group("Members Once")["id"]
    member_ids = [m["id"] for m in client.members()][:3]
    sandbox.inject("POST", r"/members$", "lose")
    with pytest.raises(OutcomeUnknown):
        client.add_user_group_members(gid, member_ids)
    assert statuses(sandbox, "POST", f"/{gid}/members") == [None]
    assert sorted(m["id"] for m in client.user_group_members(gid)) == sorted(member_ids)


def test_sandbox_5xx_on_post_is_outcome_unknown(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    sandbox.inject("POST", r"/iam/resource_groups$", "5xx")
    with pytest.raises(OutcomeUnknown):
        client.create_resource_group("whole account", f"com.cloudflare.api.account.{sandbox.account_id}")
    assert len(statuses(sandbox, "POST", "/iam/resource_groups")) == 1


def test_sandbox_timeout_on_get_is_retried(sandbox, clock):
    sandbox.timeout_seconds = 0.3
    client = sandbox_client(sandbox, clock, timeout=(2.0, 0.1))
    sandbox.inject("GET", r"/iam/permission_groups$", "timeout")
    assert len(list(client.permission_groups())) == 101
    assert client.http.calls == 2 + 2 and len(clock.sleeps) == 1  # timed out, backed off once, retried; 2 more pages of 50
    # The sandbox logs the held request only when it finally drops it.
    deadline = time.monotonic() + 2
    while None not in statuses(sandbox, "GET", "/iam/permission_groups") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(statuses(sandbox, "GET", "/iam/permission_groups"), key=str) == [200, 200, 200, None]


def test_sandbox_listing_costs_are_minimal(sandbox, clock):
    client = sandbox_client(sandbox, clock)
    # (path, items, pages): one call per page at the largest per_page (50 for roles and
    # permission groups, whose 71 and 101 items need 2 and 3 pages).
    expected = {
        "members": ("/members", 47, 1), "roles": ("/roles", 71, 2), "permission_groups": ("/iam/permission_groups", 101, 3),
        "user_groups": ("/iam/user_groups", 3, 1), "scim_groups": ("/scim/v2/Groups", 77 + 1, 1),  # + the SCIM-pushed user group
        "scim_users": ("/scim/v2/Users", 30, 1),
    }
    for method, (suffix, count, pages) in expected.items():
        sandbox.reset_calls()
        assert len(list(getattr(client, method)())) == count, method
        assert statuses(sandbox, "GET", suffix) == [200] * pages, method


def test_sandbox_multi_page_listings_cost_ceil_n_over_page_size(clock):
    from migrate.sandbox import Sandbox
    from migrate.sandbox.seeds import generate_seed

    with Sandbox(seed=generate_seed(groups=120, members=230, random_seed=3), rate_limit=None) as sb:
        client = sandbox_client(sb, clock)
        for method, suffix, page_size in (
            ("members", "/members", 50),
            ("permission_groups", "/iam/permission_groups", 50),
            ("scim_groups", "/scim/v2/Groups", 100),
            ("scim_users", "/scim/v2/Users", 100),
        ):
            sb.reset_calls()
            n = len(list(getattr(client, method)()))
            assert n > page_size, method
            assert statuses(sb, "GET", suffix) == [200] * math.ceil(n / page_size), method
