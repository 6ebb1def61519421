"""The Okta org as it stands when an account provisioned through Okta starts its migration,
mirrored from the Cloudflare sandbox it pushes into."""

from ..idp_served import scim_view
from .state import now

APP_LABEL = "Cloudflare Dashboard"
APP_NAME = "cloudflare_dashboard"  # the catalog key is not published; the emulator's choice


def seed(sandbox, cloudflare, provisioning=True, group_push=True, mapped=True, assigned=True, scim_token=None, imported=True):
    state = sandbox.state
    state.admin = state.add_user("okta.admin@acme-corp.example", "Okta", "Admin")
    state.add_group("Everyone", kind="BUILT_IN")
    if cloudflare is None:
        return
    scim_users, system, custom, account_id = scim_view(cloudflare)
    app = state.add_app(APP_LABEL, APP_NAME, f"{cloudflare.base_url}/accounts/{account_id}/scim/v2",
                        scim_token or cloudflare.token, provisioning=provisioning, group_push=group_push)
    sandbox.app_id = app["id"]
    by_scim_id = {}
    for remote in scim_users:
        name = remote.get("name") or {}
        first = name.get("givenName") or remote["userName"].split("@")[0]
        last = name.get("familyName") or "-"
        user = state.add_user(remote["userName"], first, last, status="ACTIVE" if remote["active"] else "SUSPENDED")
        by_scim_id[remote["id"]] = user
        stamp = now()
        # Assigned to the app (through a group below, or directly) and provisioned as this SCIM user.
        app["app_users"][user["id"]] = {"id": user["id"], "externalId": remote["id"], "created": stamp, "lastUpdated": stamp,
                                        "scope": "GROUP", "status": "PROVISIONED", "syncState": "SYNCHRONIZED", "lastSync": stamp}
        app["scim_ids"][user["id"]] = remote["id"]
    pushed = []
    for gid, display in system.items():
        members = [by_scim_id[u["id"]]["id"] for u in scim_users if gid in u["groups"]]
        if not members:
            continue
        pushed.append((state.add_group(display, members=members), gid))
    for gid, name, user_ids in custom:
        if all(u in by_scim_id for u in user_ids):
            pushed.append((state.add_group(name, members=[by_scim_id[u]["id"] for u in user_ids]), gid))
    for group, scim_id in pushed:
        if assigned:
            app["assignments"][group["id"]] = {"priority": len(app["assignments"]), "lastUpdated": now()}
        if mapped or imported:  # its Cloudflare group as an app group in Okta (pushed, or imported)
            target = state.add_group(group["profile"]["name"], kind="APP_GROUP", source=app["id"])
            target["scim_id"] = scim_id
        if mapped:
            stamp = now()
            mapping = {"id": state.new_id("gPm"), "created": stamp, "lastUpdated": stamp, "sourceGroupId": group["id"],
                       "status": "ACTIVE", "targetGroupId": target["id"], "scim_id": scim_id, "lastPush": stamp, "errorSummary": None}
            app["mappings"][mapping["id"]] = mapping
    covered = state.assigned_users(app)
    for user in by_scim_id.values():
        if user["id"] not in covered:  # in no pushed group: assigned to the app directly
            app["direct_users"].add(user["id"])
            app["app_users"][user["id"]]["scope"] = "USER"
    # Unrelated to Cloudflare: a group with an Okta-only user and a provisioned one, and an empty one.
    outsider = state.add_user("dana.outsider@acme-corp.example", "Dana", "Outsider")
    first = next(iter(by_scim_id.values()), None)
    state.add_group("Engineering", members=[outsider["id"]] + ([first["id"]] if first else []))
    state.add_group("Contractors")
