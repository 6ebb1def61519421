"""The Entra emulator on its own terms: Graph's rules it enforces (batch sizes, scope of on-demand
requests, throttling, quarantine), its seed, and `vgmigrate sandbox serve --entra`."""

import signal
import subprocess
import sys

import pytest
import requests

from migrate.sandbox.entra import EntraSandbox


@pytest.fixture
def entra(sandbox):
    with EntraSandbox(cloudflare=sandbox) as emulator:
        yield emulator


def graph(emulator, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {emulator.issue_token()}"}
    return requests.request(method, emulator.graph_url + path, headers=headers, timeout=5, **kwargs)


def test_the_seed_mirrors_every_virtual_group_with_its_members(entra, sandbox):
    with sandbox.state.lock:
        state = sandbox.state
        want = {g["displayName"]: sorted(u["userName"] for u in state.scim_users.values() if gid in u["groups"])
                for gid, g in state.scim_groups.items()}
    with entra.state.lock:
        users = entra.state.users
        got = {g["displayName"]: sorted(users[u]["userPrincipalName"] for u in g["members"]) for g in entra.state.groups.values()}
        assigned = {entra.state.groups[a["principalId"]]["displayName"] for a in entra.state.assignments.values()}
    assert {name: members for name, members in want.items() if members} == {n: got[n] for n in want if want[n]}
    assert {n for n in want if want[n]} <= assigned and "Engineering" not in assigned


def test_members_odata_bind_takes_at_most_20_references(entra):
    with entra.state.lock:
        ids = [entra.state.add_user(f"u{i}@example.com", f"U {i}")["id"] for i in range(21)]
    body = {"displayName": "Big", "mailEnabled": False, "mailNickname": "big", "securityEnabled": True,
            "members@odata.bind": [f"https://graph.microsoft.com/v1.0/directoryObjects/{u}" for u in ids]}
    answer = graph(entra, "POST", "/groups", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "Request_BadRequest"
    body["members@odata.bind"] = body["members@odata.bind"][:20]
    assert graph(entra, "POST", "/groups", json=body).status_code == 201


def test_on_demand_requests_are_throttled_at_five_per_window(entra):
    sp = entra.service_principal_id
    job = graph(entra, "GET", f"/servicePrincipals/{sp}/synchronization/jobs").json()["value"][0]["id"]
    rule = graph(entra, "GET", f"/servicePrincipals/{sp}/synchronization/jobs/{job}/schema").json()["synchronizationRules"][0]["id"]
    group = entra.state.assigned_groups(sp)[0]
    body = {"parameters": [{"ruleId": rule, "subjects": [{"objectId": group, "objectTypeName": "Group", "links": {"members": []}}]}]}
    token = entra.issue_token()
    statuses = [requests.post(f"{entra.graph_url}/servicePrincipals/{sp}/synchronization/jobs/{job}/provisionOnDemand",
                              json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5) for _ in range(6)]
    assert [s.status_code for s in statuses] == [200] * 5 + [429]
    assert int(statuses[-1].headers["Retry-After"]) >= 1


def test_a_wrong_secret_token_quarantines_the_job_at_its_next_push(sandbox):
    with EntraSandbox(cloudflare=sandbox, scim_token="wrong-token") as emulator:
        with emulator.state.lock:
            group = emulator.state.add_group("New Group", [next(iter(emulator.state.users))])
            emulator.state.assign(emulator.state.service_principals[emulator.service_principal_id], group)
        emulator.run_cycle()
        job = graph(emulator, "GET", f"/servicePrincipals/{emulator.service_principal_id}/synchronization/jobs").json()["value"][0]
    assert job["status"]["code"] == "Quarantine" and job["status"]["quarantine"]["error"]["code"] == "CredentialsInvalid"


def test_serve_with_entra_prints_both_environments_and_serves_both():
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "sandbox", "serve", "--port", "0", "--no-rate-limit", "--entra", "--entra-port", "0"],
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
        assert {"CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_TOKEN", "ENTRA_TENANT_ID", "ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET",
                "ENTRA_LOGIN_URL", "ENTRA_GRAPH_URL"} <= set(env)
        token = requests.post(f"{env['ENTRA_LOGIN_URL']}/{env['ENTRA_TENANT_ID']}/oauth2/v2.0/token", timeout=5, data={
            "grant_type": "client_credentials", "client_id": env["ENTRA_CLIENT_ID"], "client_secret": env["ENTRA_CLIENT_SECRET"],
            "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
        groups = requests.get(env["ENTRA_GRAPH_URL"] + "/groups", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        assert any(g["displayName"].startswith("CF-") for g in groups["value"])
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0 and "Traceback" not in err
