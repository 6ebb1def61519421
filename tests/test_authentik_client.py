"""AuthentikClient against a scripted loopback server: paths, pagination, Authentik's error shapes,
retries and redaction. The emulator-backed tests are in test_idp_check.py and test_scan.py."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from test_http import MaxJitter, ScriptedServer

from migrate.idp.authentik import AuthentikClient, log_lines, normalise_base_url, version_at_least, version_tuple
from migrate.errors import AuthentikError, CloudflareError, OutcomeUnknown, UsageProblem
from migrate.http import AuthentikRetriesExhausted, NetworkError, RateLimiter

TOKEN = "ak-test-token-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()


def client_for(server, clock, **kwargs):
    base = server.url.replace("/client/v4", "")  # the client adds /api/v3
    return AuthentikClient.connect(base, TOKEN, sleep=clock.sleep, random=MaxJitter(), timeout=(1.0, 2.0), **kwargs)


def page(results, next_page=0, **pagination):
    return {"pagination": {"next": next_page, "previous": 0, "count": len(results), "current": 1, "total_pages": 1,
                           "start_index": 1, "end_index": len(results), **pagination}, "results": results, "autocomplete": {}}


def query(request):
    return parse_qs(urlsplit(request[1]).query)


def path_of(request):
    return urlsplit(request[1]).path


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [
    "https://ak.example.com", "https://ak.example.com/", "https://ak.example.com/api/v3", "https://ak.example.com/api/v3/",
    " https://ak.example.com/api ",
])
def test_the_url_is_accepted_with_or_without_the_api_path(given):
    assert normalise_base_url(given) == "https://ak.example.com/api/v3"


def test_a_url_under_a_subpath_keeps_it():
    assert normalise_base_url("https://sso.example.com/authentik/") == "https://sso.example.com/authentik/api/v3"


@pytest.mark.parametrize("url, token, names", [
    (None, TOKEN, "AUTHENTIK_URL"), ("", TOKEN, "AUTHENTIK_URL"), ("ak.example.com", TOKEN, "AUTHENTIK_URL"),
    ("https://ak.example.com", None, "AUTHENTIK_TOKEN"), ("https://ak.example.com", "  ", "AUTHENTIK_TOKEN"),
])
def test_a_missing_or_malformed_setting_is_a_one_line_usage_problem(url, token, names):
    with pytest.raises(UsageProblem) as err:
        AuthentikClient.connect(url, token)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_versions_compare_numerically_and_unknown_counts_as_current():
    assert version_tuple("2026.5.6") == (2026, 5, 6)
    assert version_tuple("2025.10.0-rc1") == (2025, 10, 0)
    assert version_at_least("2025.10.1", "2025.8") and not version_at_least("2025.6.4", "2025.8")
    assert version_at_least(None, "2026.8")


# -- requests ------------------------------------------------------------------------------------


def test_lists_follow_pagination_next_until_zero(server, clock):
    server.push(("respond", 200, {}, page([{"pk": 1}, {"pk": 2}], next_page=2)),
                ("respond", 200, {}, page([{"pk": 3}], next_page=0)))
    ak = client_for(server, clock)
    assert [u["pk"] for u in ak.users(email="a@example.com")] == [1, 2, 3]
    first, second = server.requests
    assert path_of(first) == "/client/v4/api/v3/core/users/".replace("/client/v4", "")
    assert query(first) == {"email": ["a@example.com"], "page": ["1"], "page_size": ["100"]}
    assert query(second)["page"] == ["2"]
    assert first[2]["Authorization"] == f"Bearer {TOKEN}"


def test_a_list_without_pagination_is_one_page(server, clock):
    server.push(("respond", 200, {}, {"results": [{"pk": 7}]}))
    assert [p["pk"] for p in client_for(server, clock).scim_providers()] == [7]
    assert len(server.requests) == 1


def test_cf_groups_are_searched_portably_and_the_prefix_checked_here(server, clock):
    # `search` is a substring match: names that merely contain "CF-" come back too.
    groups = [{"pk": "a", "name": "CF-" + "0" * 32 + " - Administrator"}, {"pk": "b", "name": "Team CF-ops"},
              {"pk": "c", "name": "cf-" + "0" * 32 + " - DNS"}]
    server.push(("respond", 200, {}, page(groups)))
    found = client_for(server, clock).cf_groups(include_users=False)
    assert [g["pk"] for g in found] == ["a", "c"]
    params = query(server.requests[0])
    assert params["search"] == ["CF-"] and params["include_users"] == ["false"]
    assert "name__startswith" not in params  # not in the schema: Authentik would ignore it and return every group


def test_group_by_name_uses_the_exact_name_filter(server, clock):
    server.push(("respond", 200, {}, page([{"pk": "x", "name": "Cloudflare - admin"}, {"pk": "y", "name": "Cloudflare - Admin"}])))
    assert client_for(server, clock).group_by_name("Cloudflare - Admin")["pk"] == "y"
    assert query(server.requests[0])["name"] == ["Cloudflare - Admin"]


def test_a_missing_group_is_none_and_membership_calls_post_the_user_pk(server, clock):
    server.push(("respond", 404, {}, {"detail": "No Group matches the given query."}), ("respond", 204, {}, b""))
    ak = client_for(server, clock)
    assert ak.group("3b1c0c1e-0000-4000-8000-000000000001") is None
    assert ak.add_user("3b1c0c1e-0000-4000-8000-000000000001", 42) is None
    method, path, _, body = server.requests[1]
    assert (method, urlsplit(path).path) == ("POST", "/api/v3/core/groups/3b1c0c1e-0000-4000-8000-000000000001/add_user/")
    assert json.loads(body) == {"pk": 42}


def test_sync_object_posts_the_group_and_returns_its_log(server, clock):
    server.push(("respond", 200, {}, {"messages": [{"log_level": "info", "event": "Synced group", "attributes": {}}]}))
    messages = client_for(server, clock).sync_object(5, "3b1c0c1e-0000-4000-8000-000000000001")
    assert messages[0]["event"] == "Synced group"
    method, path, _, body = server.requests[0]
    assert (method, urlsplit(path).path) == ("POST", "/api/v3/providers/scim/5/sync/object/")
    assert json.loads(body) == {"sync_object_model": "authentik.core.models.Group",
                                "sync_object_id": "3b1c0c1e-0000-4000-8000-000000000001", "override_dry_run": False}


def test_sync_status_is_normalised_from_the_pre_2025_8_shape(server, clock):
    server.push(("respond", 200, {}, {"is_running": False, "tasks": [
        {"status": "successful", "finish_timestamp": "2025-01-01T00:00:00Z", "messages": []},
        {"status": "error", "finish_timestamp": "2025-01-02T00:00:00Z",
         "messages": [{"log_level": "error", "event": "Failed to sync group", "attributes": {"message": "HTTP 401"}}]},
    ]}))
    status = client_for(server, clock).sync_status(5)
    assert status["last_sync_status"] == "error"
    assert status["last_successful_sync"] == "2025-01-01T00:00:00Z"
    assert log_lines(status["legacy_messages"]) == ["error: Failed to sync group (HTTP 401)"]


def test_tasks_are_not_asked_of_a_server_older_than_2025_8(server, clock):
    server.push(("respond", 200, {}, {"version_current": "2025.6.3"}))
    ak = client_for(server, clock)
    assert ak.provider_tasks(5) == []
    assert len(server.requests) == 1  # only the version


def test_tasks_are_filtered_by_the_provider_and_problem_status(server, clock):
    server.push(("respond", 200, {}, {"version_current": "2026.5.6"}), ("respond", 200, {}, page([{"logs": []}])))
    assert client_for(server, clock).provider_tasks(5, problems_only=True) == [{"logs": []}]
    params = query(server.requests[1])
    assert params["rel_obj_id"] == ["5"] and params["rel_obj_content_type__model"] == ["scimprovider"]
    assert params["aggregated_status"] == ["warning", "error"]


def test_a_version_the_token_may_not_read_is_unknown(server, clock):
    server.push(("respond", 403, {}, {"detail": "You do not have permission to perform this action."}))
    ak = client_for(server, clock)
    assert ak.version() is None and ak.version() is None
    assert len(server.requests) == 1  # read once


# -- errors --------------------------------------------------------------------------------------


def test_a_refused_token_says_how_to_make_one_and_never_shows_it(server, clock):
    server.push(("respond", 403, {}, {"detail": f"Token invalid/expired ({TOKEN})", "code": "authentication_failed"}))
    with pytest.raises(AuthentikError) as err:
        client_for(server, clock).me()
    text = str(err.value)
    assert isinstance(err.value, CloudflareError)  # the executor's `except CloudflareError` catches it
    assert text.startswith("Authentik API GET /core/users/me/ failed with HTTP 403: Token invalid/expired (***)")
    assert 'intent "API"' in text and "AUTHENTIK_TOKEN" in text and TOKEN not in text and "\n" not in text


def test_validation_errors_name_the_field(server, clock):
    server.push(("respond", 400, {}, {"name": ["group with this name already exists."], "non_field_errors": ["bad"]}))
    with pytest.raises(AuthentikError) as err:
        client_for(server, clock).create_group("Cloudflare - Admin")
    assert str(err.value) == "Authentik API POST /core/groups/ failed with HTTP 400: name: group with this name already exists.; bad"
    assert err.value.codes == ["name", "invalid"]


def test_a_page_that_is_not_json_says_the_url_is_probably_wrong(server, clock):
    server.push(("respond", 200, {}, b"<html>login</html>"))
    with pytest.raises(AuthentikError, match="AUTHENTIK_URL"):
        client_for(server, clock).me()


def test_429_waits_for_retry_after_and_the_client_does_not_pace(server, clock):
    default = client_for(server, clock).http.limiter
    assert default.limit is None and default.burst is None  # no 1200 / 300 s window: Authentik has no such limit
    server.push(("respond", 429, {"Retry-After": "7"}, {"detail": "slow down"}), ("respond", 200, {}, {"user": {"pk": 1}}))
    ak = client_for(server, clock, limiter=RateLimiter(limit=None, clock=clock, sleep=clock.sleep))
    assert ak.me() == {"user": {"pk": 1}}
    assert clock.sleeps == [7]


def test_5xx_on_reads_is_retried_then_reported_as_authentik_trouble(server, clock):
    server.push(*[("respond", 503, {}, {"detail": "down"})] * 3)
    with pytest.raises(AuthentikRetriesExhausted) as err:
        client_for(server, clock, max_retries=2).scim_providers()
    assert isinstance(err.value, AuthentikError)
    assert str(err.value).startswith("Authentik API GET /providers/scim/ failed with HTTP 503: down")
    assert "Authentik is having trouble" in str(err.value) and "Cloudflare" not in str(err.value)


def test_a_lost_post_is_never_resent(server, clock):
    server.push(("respond", 502, {}, {"detail": "bad gateway"}))
    with pytest.raises(OutcomeUnknown) as err:
        client_for(server, clock).create_group("Cloudflare - Admin")
    assert isinstance(err.value.cause, AuthentikError)
    assert len(server.requests) == 1


def test_an_unreachable_server_names_authentik_url(clock):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ak = AuthentikClient.connect(f"http://127.0.0.1:{port}", TOKEN, sleep=clock.sleep, random=MaxJitter(), max_retries=1, timeout=(0.5, 0.5))
    with pytest.raises(NetworkError) as err:
        ak.me()
    assert "AUTHENTIK_URL" in str(err.value) and "CLOUDFLARE_BASE_URL" not in str(err.value)
