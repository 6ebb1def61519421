"""Records -> response objects, expanding references the way Cloudflare's schema shows them."""

from copy import deepcopy

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def account(state):
    return deepcopy(state.account)


def permission_group(pg):
    return {"id": pg["id"], "name": pg["name"], "meta": _string_meta(pg["meta"])}


def _string_meta(meta):
    """Cloudflare sends every permission-group meta value as a string (`"editable": "false"`,
    `"deprecated": "true"`; the SDK types them so), whatever type a seed used."""
    out = {}
    for key, value in meta.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str):
            value = str(value)
        out[key] = value
    return out


def resource_group(rg):
    out = {
        "id": rg["id"],
        "name": rg["name"],
        "scope": {"key": rg["scope"]["key"], "objects": [dict(o) for o in rg["scope"]["objects"]]},
        "meta": dict(rg["meta"]),
    }
    if out["name"] is None:  # made quietly by an inline policy scope: the schema does not require a name
        del out["name"]
    return out


def policy(state, p):
    return {
        "id": p["id"],
        "access": p["access"],
        "permission_groups": [permission_group(state.permission_groups[i]) for i in p["permission_groups"]],
        "resource_groups": [resource_group(state.resource_groups[i]) for i in p["resource_groups"]],
    }


def user_group(state, group):
    return {
        "id": group["id"],
        "name": group["name"],
        "created_on": group["created_on"],
        "modified_on": group["modified_on"],
        "policies": [policy(state, p) for p in group["policies"]],
    }


def role(r):
    # {area: {"read": bool, "write": bool}}: two levels to copy (deepcopy was most of a members page)
    permissions = {area: dict(rights) if isinstance(rights, dict) else rights for area, rights in r["permissions"].items()}
    return {"id": r["id"], "name": r["name"], "description": r["description"], "permissions": permissions}


def member(state, m):
    # A role never changes once the seed is loaded: render each once, not on every member of every
    # page (it was a quarter of the sandbox's time on a members listing). Responses are serialized
    # as they are made and never changed, so sharing the rendered role is safe.
    views = state.role_views
    return {
        "id": m["id"],
        "email": m["email"],
        "status": m["status"],
        "user": dict(m["user"]),
        "roles": [views.get(i) or views.setdefault(i, role(state.roles[i])) for i in m["roles"]],
        "policies": [policy(state, p) for p in m["policies"]],
    }


def group_member(m):
    return {"id": m["id"], "email": m["email"], "status": m["status"]}


def group_member_detail(m, added_at):
    user = m["user"]
    return {
        "id": m["id"],
        "email": m["email"],
        "status": m["status"],
        "created_at": added_at,
        "user": {
            "id": user["id"],
            "email": user["email"],
            "first_name": user.get("first_name") or "",
            "last_name": user.get("last_name") or "",
        },
    }


def scim_user(state, u, base):
    given = (u.get("name") or {}).get("givenName")
    family = (u.get("name") or {}).get("familyName")
    name = {}
    if given:
        name["givenName"] = given
    if family:
        name["familyName"] = family
    formatted = " ".join(x for x in (given, family) if x)
    if formatted:
        name["formatted"] = formatted
    out = {
        "schemas": [SCIM_USER],
        "id": u["id"],
        "userName": u["userName"],
        "displayName": u.get("displayName") or formatted or u["userName"],
        "name": name,
        "emails": [{"value": u["userName"], "primary": True, "type": "work"}],
        "active": u["active"],
        "groups": state.scim_user_group_ids(u),
        "meta": {"resourceType": "User", "location": f"{base}/Users/{u['id']}"},
    }
    if u.get("externalId") is not None:
        out["externalId"] = u["externalId"]
    return out


def scim_group(state, group_id, base, with_members=False):
    """System groups never show members; custom (user) groups do on a single GET."""
    system = state.scim_groups.get(group_id)
    if system is not None:
        out = {"schemas": [SCIM_GROUP], "id": system["id"], "displayName": system["displayName"]}
    else:
        group = state.user_groups[group_id]
        out = {"schemas": [SCIM_GROUP], "id": group["id"], "displayName": group["name"]}
        if group.get("external_id") is not None:
            out["externalId"] = group["external_id"]
        if with_members:
            out["members"] = [
                {"value": state.members[mid]["user"]["id"], "display": state.members[mid]["email"]}
                for mid in group["members"]
            ]
    out["meta"] = {"resourceType": "Group", "location": f"{base}/Groups/{group_id}"}
    return out


def scim_list(resources, total, start_index):
    return {
        "schemas": [SCIM_LIST],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def scim_error(status, detail, scim_type=None):
    out = {"schemas": [SCIM_ERROR], "status": str(status), "detail": detail}
    if scim_type:
        out["scimType"] = scim_type
    return out

