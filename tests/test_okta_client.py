"""OktaClient against the Okta emulator pushing into the Cloudflare sandbox: settings, tokens and
scopes, pagination, the rate limit, and the IdP protocol's calls (groups, scope, push, unpush)."""

import time

import pytest
from test_http import MaxJitter, ScriptedServer

from migrate import iam
from migrate.cloudflare import CloudflareClient
from migrate.errors import OktaError, UsageProblem, VgmigrateError
from migrate.http import RateLimiter, parse_budget
from migrate.idp.okta import OktaClient, connect_from_env, marker_of, normalise_org_url
from migrate.sandbox.okta import OktaSandbox


@pytest.fixture
def okta(sandbox):
    sb = OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.02), retry_backoff=0.05)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


def client(okta, **kwargs):
    page_size = kwargs.pop("page_size", None)
    made = OktaClient.connect(okta.base_url, api_token=kwargs.pop("api_token", okta.token), **kwargs)
    made.page_size = page_size
    return made


def cloudflare(sandbox):
    return CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)


def cf_names(sandbox):
    with sandbox.state.lock:
        return {g["name"]: set(g["members"]) for g in sandbox.state.user_groups.values()}


def snapshot(okta):
    with okta.state.lock:
        return (sorted((g["id"], g["profile"]["name"], tuple(g["members"])) for g in okta.state.groups.values()),
                sorted((a["id"], tuple(a["assignments"]), tuple(sorted(a["mappings"]))) for a in okta.state.apps.values()))


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["https://acme.okta.com", "https://acme.okta.com/", "https://acme.okta.com/api/v1/", " https://acme.okta.com "])
def test_the_org_url_is_accepted_with_or_without_the_api_path(given):
    assert normalise_org_url(given) == "https://acme.okta.com"


@pytest.mark.parametrize("environ, names", [
    ({}, "OKTA_ORG_URL"),
    ({"OKTA_ORG_URL": "acme.okta.com", "OKTA_API_TOKEN": "x"}, "OKTA_ORG_URL"),
    ({"OKTA_ORG_URL": "https://acme-admin.okta.com", "OKTA_API_TOKEN": "x"}, "https://acme.okta.com"),
    ({"OKTA_ORG_URL": "https://acme.okta.com"}, "OKTA_API_TOKEN"),
    ({"OKTA_ORG_URL": "https://acme.okta.com", "OKTA_API_TOKEN": "a", "OKTA_ACCESS_TOKEN": "b"}, "unset one"),
])
def test_a_missing_or_malformed_setting_is_one_line_naming_it(environ, names):
    with pytest.raises(UsageProblem) as err:
        connect_from_env(environ)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_the_marker_is_read_back_only_from_a_description_vgmigrate_wrote():
    assert marker_of('{"vgmigrate":{"plan":"p1"}}') == {"vgmigrate": {"plan": "p1"}}
    for other in (None, "", "Team of admins", '{"vgmigrate": "x"}', '{"vgmigrate": {}, "other": 1}', "[1]"):
        assert marker_of(other) == {}


# -- tokens and scopes -----------------------------------------------------------------------------


def test_a_wrong_token_is_one_line_that_says_which_variable_and_never_echoes_it(okta):
    bad = "00" + "x" * 40
    with pytest.raises(OktaError) as err:
        client(okta, api_token=bad).cf_groups()
    message = str(err.value)
    assert err.value.status == 401 and "E0000011" in message and "OKTA_API_TOKEN" in message
    assert bad not in message and "\n" not in message


def test_a_missing_scope_is_named_and_nothing_changes(sandbox):
    with OktaSandbox(cloudflare=sandbox, access_tokens={"at-read": ["okta.groups.read"]}) as okta:
        reader = OktaClient.connect(okta.base_url, access_token="at-read")
        before = snapshot(okta)
        assert reader.cf_groups(include_users=False)  # reading is allowed
        with pytest.raises(OktaError) as err:
            reader.create_group("Administrator", [], {"vgmigrate": {"plan": "p"}})
        assert err.value.status == 403 and err.value.scopes == ["okta.groups.manage"]
        assert "lacks the scope okta.groups.manage" in str(err.value) and "OKTA_ACCESS_TOKEN" in str(err.value)
        with pytest.raises(OktaError) as err:
            reader.mappings(okta.app_id)
        assert set(err.value.scopes) == {"okta.apps.read"}
        assert snapshot(okta) == before


def test_an_access_token_is_sent_as_bearer_and_an_api_token_as_ssws(sandbox):
    with OktaSandbox(cloudflare=sandbox, access_tokens={"at-all": ["okta.groups.read"]}) as okta:
        assert OktaClient.connect(okta.base_url, access_token="at-all").me()
        with pytest.raises(OktaError):  # the access token is not an API token
            OktaClient.connect(okta.base_url, api_token="at-all").me()
        with pytest.raises(OktaError):
            OktaClient.connect(okta.base_url, access_token=okta.token).me()


# -- pagination and the rate limit -----------------------------------------------------------------


def test_okta_rate_limit_headers_are_a_budget():
    headers = {"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(1_000_000_090)}
    assert parse_budget(headers, now_wall=1_000_000_000) == (0, 90.0, 600)


@pytest.fixture
def scripted():
    server = ScriptedServer()
    yield server
    server.close()


def test_a_429_without_retry_after_waits_until_x_rate_limit_reset_and_sends_ssws(scripted, clock):
    reset = str(int(time.time()) + 40)
    error = {"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."}
    scripted.script.extend([("respond", 429, {"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": reset}, error),
                            ("respond", 200, {}, [])])
    limiter = RateLimiter(limit=None, clock=clock, sleep=clock.sleep)
    reader = OktaClient.connect(scripted.url.replace("/client/v4", ""), api_token="00secret-okta-token", limiter=limiter,
                                sleep=clock.sleep, random=MaxJitter())
    assert reader.me() == {"groups": []}
    assert 38 <= limiter.waits[0][0] <= 41  # the reset, not a backoff of a second or two
    assert [r[2]["Authorization"] for r in scripted.requests] == ["SSWS 00secret-okta-token"] * 2


def test_every_page_is_read_by_following_the_link_header(okta):
    small = client(okta, page_size=2)
    with okta.state.lock:
        expected = {g["profile"]["name"]: set(g["members"]) for g in okta.state.groups.values()
                    if g["type"] == "OKTA_GROUP" and g["profile"]["name"].casefold().startswith("cf-")}
    found = small.cf_groups()
    assert {g["name"]: set(g["users"]) for g in found} == expected
    assert max(len(g["users"]) for g in found) > 2  # the member lists spanned pages too
    pages = [c for c in okta.calls if c[1] == "/api/v1/groups"]
    assert len(pages) >= len(expected) // 2


def test_a_429_waits_for_the_reset_the_headers_give_and_is_retried(okta):
    okta.inject("GET", r"^/api/v1/groups$", "429")
    reader = client(okta)
    started = time.monotonic()
    assert reader.cf_groups(include_users=False)
    assert reader.http.rate_limited == 1
    assert [s for m, p, s in okta.calls if p == "/api/v1/groups"][:2] == [429, 200]
    assert time.monotonic() - started <= 2.5  # X-Rate-Limit-Reset (at most a second away), not a long backoff


def test_calls_are_paced_by_the_remaining_budget_so_the_limit_is_never_hit(sandbox):
    with OktaSandbox(cloudflare=sandbox, rate_limit=(3, 0.6)) as okta:
        reader = client(okta)
        for _ in range(5):
            reader.me()
        assert reader.http.rate_limited == 0
        assert [s for _, _, s in okta.calls] == [200] * 5


def test_a_rate_limit_that_never_resets_gives_up_in_one_line(sandbox):
    with OktaSandbox(cloudflare=sandbox) as okta:
        okta.inject("GET", r"^/api/v1/groups$", "429", times=3)
        reader = client(okta, max_retries=2)
        with pytest.raises(OktaError) as err:
            reader.me()
        assert err.value.status == 429 and "E0000047" in str(err.value) and "\n" not in str(err.value)


# -- groups ----------------------------------------------------------------------------------------


def test_a_group_is_created_with_its_members_and_its_marker_read_back(okta):
    okta_client = client(okta)
    cf_group = okta_client.cf_groups()[0]
    made = okta_client.create_group("Administrator (new)", cf_group["users"], {"vgmigrate": {"plan": "p", "run": 1}})
    assert made["attributes"] == {"vgmigrate": {"plan": "p", "run": 1}}
    assert set(made["users"]) == set(cf_group["users"])
    assert {u["email"] for u in made["users_obj"]} == {u["email"] for u in cf_group["users_obj"]}
    assert okta_client.group_by_name("Administrator (new)")["pk"] == made["pk"]
    assert okta_client.group_by_name("administrator (NEW)") is None  # exact name only


def test_creating_again_finishes_the_first_attempt_and_adds_only_missing_members(okta):
    okta_client = client(okta)
    members = okta_client.cf_groups()[0]["users"]
    first = okta_client.create_group("Half made", members[:1], {"vgmigrate": {"plan": "p"}})
    okta.reset_calls()
    again = okta_client.create_group("Half made", members, {"vgmigrate": {"plan": "p"}})
    assert again["pk"] == first["pk"] and set(again["users"]) == set(members)
    puts = [c for c in okta.calls if c[0] == "PUT"]
    assert len(puts) == len(members) - 1


def test_a_name_taken_by_a_group_vgmigrate_did_not_make_is_refused(okta):
    okta_client = client(okta)
    with pytest.raises(OktaError) as err:
        okta_client.create_group("Engineering", [], {"vgmigrate": {"plan": "p"}})
    assert err.value.status == 400 and "already exists" in str(err.value)


def test_set_members_sends_only_the_difference(okta):
    okta_client = client(okta)
    group = okta_client.group_by_name("Engineering")
    target = okta_client.cf_groups()[0]["users"][:2]
    okta.reset_calls()
    okta_client.set_members(group["pk"], target)
    assert set(okta_client.group(group["pk"])["users"]) == set(target)
    writes = [c[0] for c in okta.calls if c[0] in ("PUT", "DELETE")]
    assert len(writes) == len(set(target) ^ set(group["users"]))


# -- scope, push, unpush ---------------------------------------------------------------------------


def test_set_scope_assigns_and_unassigns_only_the_difference(okta):
    okta_client = client(okta)
    before = okta_client.scope_of(okta.app_id)
    extra = okta_client.group_by_name("Contractors")["pk"]
    okta_client.set_scope(okta.app_id, before + [extra])
    assert set(okta_client.scope_of(okta.app_id)) == set(before) | {extra}
    okta.reset_calls()
    okta_client.set_scope(okta.app_id, before)
    assert set(okta_client.scope_of(okta.app_id)) == set(before)
    assert [c[0] for c in okta.calls if c[0] in ("PUT", "DELETE")] == ["DELETE"]


def test_a_push_reaches_cloudflare_with_the_provisioned_members_only(okta, sandbox):
    okta_client = client(okta)
    source = okta_client.cf_groups()[0]
    outsider = okta_client.group_by_name("Engineering")["users"]
    group = okta_client.create_group("Pushed team", source["users"] + outsider, {"vgmigrate": {"plan": "p"}})
    okta_client.set_scope(okta.app_id, okta_client.scope_of(okta.app_id) + [group["pk"]])
    assert okta_client.push(okta.app_id, group["pk"]) == []
    assert okta_client.push(okta.app_id, group["pk"]) == []  # idempotent: still one mapping
    assert len(okta_client.mappings(okta.app_id, group["pk"])) == 1
    okta.settle()
    provisioned = {u["email"].casefold() for u in source["users_obj"]}
    with sandbox.state.lock:
        pushed = next(g for g in sandbox.state.user_groups.values() if g["name"] == "Pushed team")
        emails = {sandbox.state.members[m]["user"]["email"].casefold() for m in pushed["members"]}
    # The outsider was assigned through the new group, so Okta provisioned her too; only app users are pushed.
    assert provisioned <= emails


def test_a_push_of_a_name_cloudflare_refuses_errors_the_mapping_and_says_why(okta):
    okta_client = client(okta)
    group = okta_client.create_group("CFO Office", [], {"vgmigrate": {"plan": "p"}})  # Cloudflare reserves names starting CF
    assert okta_client.push_problems(okta.app_id, group["pk"]) == []
    okta_client.push(okta.app_id, group["pk"])
    okta.settle()
    mapping = okta_client.mapping_for(okta.app_id, group["pk"])
    assert mapping["status"] == "ERROR" and "reserved prefix" in mapping["errorSummary"]
    problems = okta_client.push_problems(okta.app_id, group["pk"])
    assert len(problems) == 1 and "reserved prefix" in problems[0] and "\n" not in problems[0]
    okta_client.push(okta.app_id, group["pk"])  # pushing again activates the same mapping (and it fails again)
    assert len(okta_client.mappings(okta.app_id, group["pk"])) == 1


def test_pushed_id_is_the_mapping_target_and_link_makes_a_mapping_to_it_again(okta, sandbox):
    okta_client = client(okta)
    source = okta_client.cf_groups()[0]
    target = okta_client.pushed_id(okta.app_id, source["pk"])
    assert target and okta_client.group(target, include_users=False)["type"] == "APP_GROUP"
    mapping = okta_client.mapping_for(okta.app_id, source["pk"])
    okta_client.set_mapping_status(okta.app_id, mapping["id"], "INACTIVE")
    okta_client.delete_mapping(okta.app_id, mapping["id"], False)  # unlinked, the group left in Cloudflare
    assert okta_client.pushed_id(okta.app_id, source["pk"]) is None
    assert okta_client.link(okta.app_id, source["pk"], target) is True
    assert okta_client.link(okta.app_id, source["pk"], target) is False  # already linked
    assert okta_client.pushed_id(okta.app_id, source["pk"]) == target
    okta_client.remove_user(source["pk"], source["users"][0])  # and a removal reaches Cloudflare again
    okta.settle()
    email = source["users_obj"][0]["email"].casefold()
    with sandbox.state.lock:
        gid = next(g for g, v in sandbox.state.scim_groups.items() if v["displayName"] == source["name"])
        assert not any(u["userName"].casefold() == email and gid in u["groups"] for u in sandbox.state.scim_users.values())


def test_unpush_deactivates_then_deletes_the_mapping_and_its_cloudflare_group(okta, sandbox):
    okta_client = client(okta)
    group = okta_client.create_group("Short lived", [], {"vgmigrate": {"plan": "p"}})
    okta_client.push(okta.app_id, group["pk"])
    okta.settle()
    assert "Short lived" in cf_names(sandbox)
    calls = okta_client.unpush_calls(okta.app_id, group["pk"])
    assert [c[0] for c in calls] == ["PATCH", "DELETE"] and "deleteTargetGroup=true" in calls[1][1]
    for _, _, call, _ in calls:
        call()
    for _, _, call, _ in calls:  # again: the mapping is gone, nothing fails
        call()
    okta.settle()
    assert "Short lived" not in cf_names(sandbox)
    assert okta_client.unpush_calls(okta.app_id, group["pk"]) == []


def test_a_membership_push_shows_in_the_system_log(okta):
    okta_client = client(okta)
    source = okta_client.cf_groups()[0]
    before = okta_client.group_pushes(okta.app_id, source["pk"])
    assert not okta_client.group_pushes_done(okta.app_id, source["pk"], before)
    okta_client.remove_user(source["pk"], source["users"][0])
    okta.settle()
    assert okta_client.group_pushes_done(okta.app_id, source["pk"], before)


# -- plan facts ------------------------------------------------------------------------------------


def test_plan_facts_name_the_app_its_provisioned_users_and_every_group(okta, sandbox):
    facts = client(okta).plan_facts(cloudflare(sandbox))
    cf = cloudflare(sandbox)
    assert facts["provider"]["pk"] == okta.app_id and facts["provider"]["url"] == cf.scim_url()
    with sandbox.state.lock:
        scim_emails = {iam.email_key(u["userName"]) for u in sandbox.state.scim_users.values()}
    assert set(facts["users"]) == scim_emails
    assert {"Engineering", "Contractors"} <= set(facts["group_names"])


@pytest.mark.parametrize("options, words", [
    ({"provisioning": False}, "no Okta app provisions"),
    ({"group_push": False}, "Group Push is off"),
])
def test_plan_facts_refuse_an_org_that_cannot_carry_the_idp_path(sandbox, options, words):
    with OktaSandbox(cloudflare=sandbox, **options) as okta:
        with pytest.raises(VgmigrateError) as err:
            client(okta).plan_facts(cloudflare(sandbox))
        assert words in str(err.value) and "\n" not in str(err.value)


def test_an_app_id_that_is_not_an_app_is_one_line(okta, sandbox):
    with pytest.raises(VgmigrateError) as err:
        client(okta, app_id="0oaNOSUCHAPP000000000").plan_facts(cloudflare(sandbox))
    assert "OKTA_APP_ID" in str(err.value)


def test_a_cf_group_whose_name_starts_with_a_space_is_found_too(okta):
    """A variant seen in the wild; Okta's `sw` would miss it, and it may still grant a role."""
    okta_client = client(okta)
    name = " " + okta_client.cf_groups()[0]["name"] + " (old copy)"
    okta_client.create_group(name, [])
    assert name in {g["name"] for g in okta_client.cf_groups(include_users=False)}
