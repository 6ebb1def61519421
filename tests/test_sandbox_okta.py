"""The Okta emulator on its own terms: what it pushes to Cloudflare and when, its errors, and
`vgmigrate sandbox serve --okta`. (The client's view of it is tests/test_okta_client.py.)"""

import signal
import subprocess
import sys

import requests

from migrate.sandbox.okta import OktaSandbox


def session(okta):
    s = requests.Session()
    s.headers["Authorization"] = f"SSWS {okta.token}"
    return s


def scim_members(sandbox, name):
    with sandbox.state.lock:
        group = next(g for g in sandbox.state.user_groups.values() if g["name"] == name)
        return {sandbox.state.members[m]["user"]["email"].casefold() for m in group["members"]}


def test_a_push_lands_after_the_request_answered(sandbox):
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.3, 0.3)) as okta:
        s = session(okta)
        group = s.post(f"{okta.base_url}/api/v1/groups", json={"profile": {"name": "Later"}}).json()
        mapping = s.post(f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings",
                         json={"sourceGroupId": group["id"], "targetGroupName": "Later"})
        assert mapping.status_code == 201 and "targetGroupId" not in mapping.json()
        with sandbox.state.lock:
            assert "Later" not in {g["name"] for g in sandbox.state.user_groups.values()}
        okta.settle()
        with sandbox.state.lock:
            assert "Later" in {g["name"] for g in sandbox.state.user_groups.values()}


def test_a_transient_scim_failure_is_retried_until_the_push_lands(sandbox):
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.01), retry_backoff=0.02) as okta:
        sandbox.inject("POST", r"/scim/v2/Groups$", "5xx", times=2)
        s = session(okta)
        group = s.post(f"{okta.base_url}/api/v1/groups", json={"profile": {"name": "Stubborn"}}).json()
        s.post(f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings", json={"sourceGroupId": group["id"], "targetGroupName": "Stubborn"})
        okta.settle()
        mapping = s.get(f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings", params={"sourceGroupId": group["id"]}).json()[0]
        assert mapping["status"] == "ACTIVE" and mapping["targetGroupId"]


def test_a_member_not_assigned_to_the_app_is_not_pushed(sandbox):
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.01)) as okta:
        s = session(okta)
        outsider = next(u for u in okta.state.users.values() if u["profile"]["login"].startswith("dana."))
        group = s.post(f"{okta.base_url}/api/v1/groups", json={"profile": {"name": "Mixed"}}).json()
        s.put(f"{okta.base_url}/api/v1/groups/{group['id']}/users/{outsider['id']}")
        s.post(f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings", json={"sourceGroupId": group["id"], "targetGroupName": "Mixed"})
        okta.settle()
        assert scim_members(sandbox, "Mixed") == set()  # the group is pushed, its unassigned member is not
        s.put(f"{okta.base_url}/api/v1/apps/{okta.app_id}/groups/{group['id']}", json={})  # now the group assigns her
        okta.settle()
        assert scim_members(sandbox, "Mixed") == {outsider["profile"]["email"]}


def test_a_user_no_longer_assigned_is_deactivated_in_cloudflare(sandbox):
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.01)) as okta:
        s = session(okta)
        with okta.state.lock:
            app = okta.state.apps[okta.app_id]
            groups = [okta.state.groups[g] for g in app["assignments"]]
            lonely, group = next((u, g) for g in groups for u in g["members"]  # assigned through this group only
                                 if sum(u in other["members"] for other in groups) == 1 and u not in app["direct_users"])
            email = okta.state.users[lonely]["profile"]["email"].casefold()
        before = len(sandbox.state.members)
        s.delete(f"{okta.base_url}/api/v1/groups/{group['id']}/users/{lonely}")
        okta.settle()
        with sandbox.state.lock:
            assert email not in sandbox.state.member_ids_by_email and len(sandbox.state.members) == before - 1


def test_an_active_mapping_cannot_be_deleted_and_delete_needs_its_flag(sandbox):
    with OktaSandbox(cloudflare=sandbox) as okta:
        s = session(okta)
        mapping = next(iter(okta.state.apps[okta.app_id]["mappings"]))
        url = f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings/{mapping}"
        assert s.delete(url, params={"deleteTargetGroup": "false"}).status_code == 400
        s.patch(url, json={"status": "INACTIVE"})
        assert s.delete(url).status_code == 400  # deleteTargetGroup is required
        assert s.delete(url, params={"deleteTargetGroup": "false"}).status_code == 204
        assert s.get(url).json()["errorCode"] == "E0000007"


def test_a_second_mapping_for_the_same_group_is_refused(sandbox):
    with OktaSandbox(cloudflare=sandbox) as okta:
        s = session(okta)
        mapping = next(iter(okta.state.apps[okta.app_id]["mappings"].values()))
        again = s.post(f"{okta.base_url}/api/v1/apps/{okta.app_id}/group-push/mappings",
                       json={"sourceGroupId": mapping["sourceGroupId"], "targetGroupName": "Again"})
        assert again.status_code == 400 and again.json()["errorCode"] == "E0000001"


def test_serve_with_okta_prints_both_environments_and_serves_both():
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "sandbox", "serve", "--port", "0", "--no-rate-limit", "--okta", "--okta-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        env = {}
        for _ in range(14):
            line = process.stdout.readline()
            if line.strip().startswith("export "):
                env.update(pair.split("=", 1) for pair in line.split()[1:])
            if line.startswith("Press Ctrl-C") or not line:
                break
        assert {"CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_TOKEN", "OKTA_ORG_URL", "OKTA_API_TOKEN"} <= set(env)
        headers = {"Authorization": f"SSWS {env['OKTA_API_TOKEN']}"}
        apps = requests.get(env["OKTA_ORG_URL"] + "/api/v1/apps", headers=headers, timeout=5).json()
        connection = requests.get(f"{env['OKTA_ORG_URL']}/api/v1/apps/{apps[0]['id']}/connections/default", headers=headers, timeout=5).json()
        assert connection["baseUrl"].startswith(env["CLOUDFLARE_BASE_URL"] + "/accounts/")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and "Traceback" not in err
