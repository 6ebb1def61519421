"""The two baselines vgmigrate's scan + plan + apply is measured against: the same migration (one
User Group per virtual group's role, with an allow policy on the account-wide resource group, and
the virtual group's members) done by

- `sdk_script`: a straightforward script on the official `cloudflare` SDK: one call at a time,
  the SDK's default page sizes, one member add per member;
- `careful_script`: a careful sequential one on `requests`: largest pages, no call after the last
  page, one member add per group carrying all its members.

Each returns (calls, 429s). Name clashes with existing User Groups get " (2)", as vgmigrate's
`--on-existing suffix` does.
"""

import math

import cloudflare  # imported here, before the timing starts, as vgmigrate's imports are
import httpx
import requests

ACCOUNT_SCOPE = "com.cloudflare.api.account.{}"


def _migrate(groups, users, pgs, members, taken, account_wide_rg, create, add):
    """The migration itself, shared by both scripts: groups -> [(name, pg id, member ids)]."""
    member_emails = {}
    for user in users:
        for ref in user.get("groups") or []:
            member_emails.setdefault(ref.get("value") if isinstance(ref, dict) else ref, []).append(user["userName"].lower())
    for group in groups:
        name = group.get("displayName") or ""
        if not name.startswith("CF-") or " - " not in name:
            continue
        role = name.split(" - ", 1)[1]
        if role not in pgs:
            continue
        target = role if role.lower() not in taken else f"{role} (2)"
        policy = {"access": "allow", "permission_groups": [{"id": pgs[role]}], "resource_groups": [{"id": account_wide_rg}]}
        gid = create(target, [policy])
        ids = [members[e] for e in member_emails.get(group["id"], []) if e in members]
        if ids:
            add(gid, ids)


def sdk_script(base_url, token, account):
    counts = {"calls": 0, "429": 0}

    def count(response):
        counts["calls"] += 1
        counts["429"] += response.status_code == 429

    cf = cloudflare.Cloudflare(api_token=token, base_url=base_url, max_retries=5,
                               http_client=httpx.Client(event_hooks={"response": [count]}))
    pgs = {pg.name: pg.id for pg in cf.iam.permission_groups.list(account_id=account)}
    members = {m.email.lower(): m.id for m in cf.accounts.members.list(account_id=account)}
    taken = {g.name.lower() for g in cf.iam.user_groups.list(account_id=account)}
    scope = ACCOUNT_SCOPE.format(account)
    rg = next(r.id for r in cf.iam.resource_groups.list(account_id=account)
              if r.scope.key == scope and [o.key for o in r.scope.objects] == ["*"])

    def scim(kind):  # the SDK has no SCIM API: its generic GET, the server's default page size
        items, start = [], 1
        while True:
            body = cf.get(f"/accounts/{account}/scim/v2/{kind}", cast_to=object, options={"params": {"startIndex": start}})
            page = body.get("Resources") or []
            items += page
            start += len(page)
            if not page or start > body.get("totalResults", 0):
                return items

    def add(gid, ids):
        for mid in ids:  # one member at a time
            cf.iam.user_groups.members.create(gid, account_id=account, members=[{"id": mid}])

    _migrate(scim("Groups"), scim("Users"), pgs, members, taken, rg,
             lambda name, policies: cf.iam.user_groups.create(account_id=account, name=name, policies=policies).id, add)
    cf.close()
    return counts["calls"], counts["429"]


def careful_script(base_url, token, account):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    counts = {"calls": 0, "429": 0}
    root = f"{base_url}/accounts/{account}"

    def call(method, path, **kwargs):
        response = session.request(method, root + path, **kwargs)
        counts["calls"] += 1
        counts["429"] += response.status_code == 429
        response.raise_for_status()
        return response.json()

    def v4(path, per_page):
        items, page = [], 1
        while True:
            body = call("GET", path, params={"page": page, "per_page": per_page})
            items += body["result"]
            total = (body.get("result_info") or {}).get("total_count", 0)
            if page >= math.ceil(total / per_page) or not body["result"]:
                return items
            page += 1

    def scim(kind):
        items, start = [], 1
        while True:
            body = call("GET", f"/scim/v2/{kind}", params={"startIndex": start, "count": 100})
            page = body.get("Resources") or []
            items += page
            start += len(page)
            if not page or start > body.get("totalResults", 0):
                return items

    pgs = {pg["name"]: pg["id"] for pg in v4("/iam/permission_groups", 50)}
    members = {m["email"].lower(): m["id"] for m in v4("/members", 50)}
    taken = {g["name"].lower() for g in v4("/iam/user_groups", 500)}
    scope = ACCOUNT_SCOPE.format(account)
    rg = next(r["id"] for r in call("GET", "/iam/resource_groups")["result"]
              if r["scope"]["key"] == scope and [o["key"] for o in r["scope"]["objects"]] == ["*"])
    _migrate(scim("Groups"), scim("Users"), pgs, members, taken, rg,
             lambda name, policies: call("POST", "/iam/user_groups", json={"name": name, "policies": policies})["result"]["id"],
             lambda gid, ids: call("POST", f"/iam/user_groups/{gid}/members", json=[{"id": i} for i in ids]))
    return counts["calls"], counts["429"]


RUN = {"sdk-script": sdk_script, "careful-script": careful_script}
