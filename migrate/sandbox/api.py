"""The v4 REST endpoints: accounts, token verify, IAM groups, members, roles, audit logs."""

import heapq
import json
from datetime import date, datetime, timezone

from . import render
from .errors import INVALID_PARAMETER, INVALID_TOKEN, ApiError, bad_request, not_found
from .routing import Router, choice_arg, count, failure, ok, page_args, paged
from .state import utc_now

router = Router()
ACCT = "/accounts/{account_id}"


def _state(request):
    return request.context.state


def audit(request, action, resource_type, resource_id, old=None, new=None):
    """One v1 audit entry per successful write, as the account's audit log would show it."""
    ctx = request.context
    raw = ctx.state.new_id()
    entry = {
        "id": f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}",
        "action": {"type": action, "result": True},
        "actor": dict(ctx.actor),
        "interface": "API",
        "metadata": {"method": request.method, "path": "/client/v4" + request.path},
        "owner": {"id": ctx.account_id},
        "resource": {"id": resource_id, "type": resource_type},
        "when": utc_now(),
    }
    if old is not None:
        entry["oldValue"] = json.dumps(old, sort_keys=True)
    if new is not None:
        entry["newValue"] = json.dumps(new, sort_keys=True)
    ctx.state.record_audit(entry)


# ---- accounts and tokens ------------------------------------------------------------------------


@router.route("GET", "/accounts")
def list_accounts(request):
    page, per_page = page_args(request, 20, 5, 50)
    account = render.account(_state(request))
    return paged(iter([account]), 1, page, per_page, lambda a: a)


@router.route("GET", ACCT)
def get_account(request, account_id):
    return ok(render.account(_state(request)))


@router.route("PUT", ACCT)
def update_account(request, account_id):
    body = request.json_object()
    for field in ("id", "name", "type"):
        if field not in body:
            raise bad_request(f"{field} is required")
    if body["id"] != account_id:
        raise bad_request("id does not match the account in the path")
    if not isinstance(body["name"], str) or not body["name"].strip() or len(body["name"]) > 100:
        raise bad_request("name must be a non-empty string of at most 100 characters")
    if body["type"] not in ("standard", "enterprise"):
        raise bad_request("type must be 'standard' or 'enterprise'")
    state = _state(request)
    old = render.account(state)
    state.account["name"] = body["name"]
    if isinstance(body.get("settings"), dict):
        state.account["settings"] = {**state.account.get("settings", {}), **body["settings"]}
    result = render.account(state)
    audit(request, "update", "account", account_id, old=old, new=result)
    return ok(result)


def _verify(request, wanted_kind):
    ctx = request.context
    if not ctx.token_valid or ctx.token_kind != wanted_kind:
        # An account-owned token does not verify on /user, nor a user token on /accounts (code 1000).
        return failure(401, INVALID_TOKEN, "Invalid API Token")
    return ok({"id": ctx.token_id, "status": "active"}, messages=[{"code": 10000, "message": "This API Token is valid and active"}])


@router.route("GET", "/user/tokens/verify", verify=True)
def verify_user_token(request):
    return _verify(request, "user")


@router.route("GET", ACCT + "/tokens/verify", verify=True)
def verify_account_token(request, account_id):
    if account_id != request.context.account_id:
        return failure(401, INVALID_TOKEN, "Invalid API Token")
    return _verify(request, "account")


# ---- permission groups and roles ----------------------------------------------------------------


@router.route("GET", ACCT + "/iam/permission_groups")
def list_permission_groups(request, account_id):
    state = _state(request)
    page, per_page = page_args(request, 20, 5, 50)
    pg_id, name, label = request.arg("id"), request.arg("name"), request.arg("label")
    if pg_id is not None and len(pg_id) != 32:
        raise ApiError(400, INVALID_PARAMETER, "id must be exactly 32 characters")

    def matching():
        if pg_id is not None:
            candidates = [state.permission_groups[pg_id]] if pg_id in state.permission_groups else []
        elif name is not None:
            candidates = [state.permission_groups[i] for i in state.permission_groups_named.get(name, ())]
        else:
            candidates = state.permission_groups.values()
        for pg in candidates:
            if name is not None and pg["name"] != name:
                continue
            if label is not None and pg["meta"].get("label") != label:
                continue
            yield pg

    return paged(matching(), count(matching()), page, per_page, render.permission_group)


@router.route("GET", ACCT + "/iam/permission_groups/{pg_id}")
def get_permission_group(request, account_id, pg_id):
    pg = _state(request).permission_groups.get(pg_id)
    if pg is None:
        raise not_found("Permission group")
    return ok(render.permission_group(pg))


@router.route("GET", ACCT + "/roles")
def list_roles(request, account_id):
    state = _state(request)
    page, per_page = page_args(request, 20, 5, 50)
    return paged(iter(state.roles.values()), len(state.roles), page, per_page, render.role)


@router.route("GET", ACCT + "/roles/{role_id}")
def get_role(request, account_id, role_id):
    role = _state(request).roles.get(role_id)
    if role is None:
        raise not_found("Role")
    return ok(render.role(role))


# ---- resource groups -------------------------------------------------------------------------------


@router.route("GET", ACCT + "/iam/resource_groups")
def list_resource_groups(request, account_id):
    # No pagination parameters on this endpoint (the SDK reads it as a single page).
    state = _state(request)
    rg_id, name = request.arg("id"), request.arg("name")
    result = [
        render.resource_group(rg)
        for rg in state.resource_groups.values()
        if (rg_id is None or rg["id"] == rg_id) and (name is None or rg["name"] == name)
    ]
    return ok(result)


@router.route("POST", ACCT + "/iam/resource_groups")
def create_resource_group(request, account_id):
    body = request.json_object()
    group = _state(request).create_resource_group(body.get("name"), body.get("scope"))
    result = render.resource_group(group)
    audit(request, "create", "resource_group", group["id"], new=result)
    return ok(result)


@router.route("GET", ACCT + "/iam/resource_groups/{rg_id}")
def get_resource_group(request, account_id, rg_id):
    return ok(render.resource_group(_state(request).require_resource_group(rg_id)))


@router.route("PUT", ACCT + "/iam/resource_groups/{rg_id}")
def update_resource_group(request, account_id, rg_id):
    body = request.json_object()
    state = _state(request)
    old = render.resource_group(state.require_resource_group(rg_id))
    group = state.update_resource_group(rg_id, name=body.get("name"), scope=body.get("scope"))
    result = render.resource_group(group)
    audit(request, "update", "resource_group", rg_id, old=old, new=result)
    return ok(result)


@router.route("DELETE", ACCT + "/iam/resource_groups/{rg_id}")
def delete_resource_group(request, account_id, rg_id):
    state = _state(request)
    old = render.resource_group(state.delete_resource_group(rg_id))
    audit(request, "delete", "resource_group", rg_id, old=old)
    return ok({"id": rg_id})


# ---- user groups -------------------------------------------------------------------------------


@router.route("GET", ACCT + "/iam/user_groups")
def list_user_groups(request, account_id):
    state = _state(request)
    page, per_page = page_args(request, 100, 1, 500)
    descending = choice_arg(request, "direction", ("asc", "desc"), "asc") == "desc"
    group_id, name, fuzzy = request.arg("id"), request.arg("name"), request.arg("fuzzyName")
    fuzzy = fuzzy.casefold() if fuzzy else None

    def matching():
        if group_id is not None or name is not None:
            # Index lookups: at most one group can match an id or an exact name.
            ids = [group_id] if group_id is not None else [state.user_group_ids_by_name.get(name)]
            candidates = (state.user_groups[i] for i in ids if i in state.user_groups)
        else:
            candidates = (state.user_groups[i] for i in state.user_group_ids_sorted(descending))
        for group in candidates:
            if name is not None and group["name"] != name:
                continue
            if fuzzy and fuzzy not in group["name"].casefold():
                continue
            yield group

    filtered = group_id is not None or name is not None or fuzzy
    total = count(matching()) if filtered else len(state.user_groups)
    return paged(matching(), total, page, per_page, lambda g: render.user_group(state, g))


@router.route("POST", ACCT + "/iam/user_groups")
def create_user_group(request, account_id):
    body = request.json_object()
    if "name" not in body:
        raise bad_request("name is required")
    state = _state(request)
    group = state.create_user_group(body["name"], body.get("policies"))
    result = render.user_group(state, group)
    audit(request, "create", "user_group", group["id"], new=result)
    return ok(result)


@router.route("GET", ACCT + "/iam/user_groups/{group_id}")
def get_user_group(request, account_id, group_id):
    state = _state(request)
    return ok(render.user_group(state, state.require_user_group(group_id)))


@router.route("PUT", ACCT + "/iam/user_groups/{group_id}")
def update_user_group(request, account_id, group_id):
    body = request.json_object()
    state = _state(request)
    old = render.user_group(state, state.require_user_group(group_id))
    group = state.update_user_group(group_id, name=body.get("name"), policies=body.get("policies"))
    result = render.user_group(state, group)
    audit(request, "update", "user_group", group_id, old=old, new=result)
    return ok(result)


@router.route("DELETE", ACCT + "/iam/user_groups/{group_id}")
def delete_user_group(request, account_id, group_id):
    state = _state(request)
    old = render.user_group(state, state.require_user_group(group_id))
    state.delete_user_group(group_id)
    audit(request, "delete", "user_group", group_id, old=old)
    return ok({"id": group_id})


# ---- user group members -------------------------------------------------------------------------


def _member_ids_body(request):
    body = request.json()
    if not isinstance(body, list):
        raise bad_request('The body must be a JSON array of members: [{"id": "<account member id>"}]')
    ids = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise bad_request('Each member must be an object with an "id" (an account member id)')
        ids.append(item["id"])
    return ids


@router.route("GET", ACCT + "/iam/user_groups/{group_id}/members")
def list_group_members(request, account_id, group_id):
    state = _state(request)
    group = state.require_user_group(group_id)
    page, per_page = page_args(request, 100, 1, 500)
    descending = choice_arg(request, "direction", ("asc", "desc"), "asc") == "desc"
    fuzzy = (request.arg("fuzzyEmail") or "").casefold()

    def matching():
        return (mid for mid in group["members"] if not fuzzy or fuzzy in state.members[mid]["email"].casefold())

    # Sorted by email; a heap keeps only the rows up to this page instead of sorting everything.
    def email(mid):
        return state.members[mid]["email"].casefold()

    wanted = page * per_page
    top = (heapq.nlargest if descending else heapq.nsmallest)(wanted, matching(), key=email)
    total = count(matching()) if fuzzy else len(group["members"])
    return paged(iter(top), total, page, per_page, lambda mid: render.group_member(state.members[mid]))


@router.route("POST", ACCT + "/iam/user_groups/{group_id}/members")
def add_group_members(request, account_id, group_id):
    state = _state(request)
    state.require_user_group(group_id)
    ids = _member_ids_body(request)
    before = state.group_member_ids(group_id)
    if state.add_group_members(group_id, ids):
        audit(request, "create", "user_group_member", group_id, old=before, new=state.group_member_ids(group_id))
    return ok([render.group_member(state.members[mid]) for mid in dict.fromkeys(ids)])


@router.route("PUT", ACCT + "/iam/user_groups/{group_id}/members")
def replace_group_members(request, account_id, group_id):
    state = _state(request)
    state.require_user_group(group_id)
    ids = _member_ids_body(request)
    before = state.group_member_ids(group_id)
    state.replace_group_members(group_id, ids)
    after = state.group_member_ids(group_id)
    audit(request, "update", "user_group_member", group_id, old=before, new=after)
    return ok([render.group_member(state.members[mid]) for mid in after])


@router.route("GET", ACCT + "/iam/user_groups/{group_id}/members/{member_id}")
def get_group_member(request, account_id, group_id, member_id):
    state = _state(request)
    group = state.require_user_group(group_id)
    if member_id not in group["members"]:
        raise not_found("User group member")
    return ok(render.group_member_detail(state.members[member_id], group["members"][member_id]))


@router.route("DELETE", ACCT + "/iam/user_groups/{group_id}/members/{member_id}")
def remove_group_member(request, account_id, group_id, member_id):
    state = _state(request)
    state.remove_group_member(group_id, member_id)
    removed = render.group_member(state.members[member_id])
    audit(request, "delete", "user_group_member", group_id, old=removed)
    return ok(removed)


# ---- account members ---------------------------------------------------------------------------------

_MEMBER_ORDER = {
    "user.first_name": lambda m: (m["user"].get("first_name") or "").casefold(),
    "user.last_name": lambda m: (m["user"].get("last_name") or "").casefold(),
    "user.email": lambda m: m["email"].casefold(),
    "status": lambda m: m["status"],
}


@router.route("GET", ACCT + "/members")
def list_members(request, account_id):
    state = _state(request)
    page, per_page = page_args(request, 20, 5, 50)
    status = choice_arg(request, "status", ("accepted", "pending", "rejected"))
    order = choice_arg(request, "order", tuple(_MEMBER_ORDER))
    direction = choice_arg(request, "direction", ("asc", "desc"), "asc")

    def matching(newest_first=False):
        members = reversed(state.members.values()) if newest_first else state.members.values()
        return (m for m in members if status is None or m["status"] == status)

    if order is None:
        rows = matching(newest_first=direction == "desc")
    else:
        pick = heapq.nlargest if direction == "desc" else heapq.nsmallest
        rows = iter(pick(page * per_page, matching(), key=_MEMBER_ORDER[order]))
    total = count(matching()) if status else len(state.members)
    return paged(rows, total, page, per_page, lambda m: render.member(state, m))


@router.route("GET", ACCT + "/members/{member_id}")
def get_member(request, account_id, member_id):
    state = _state(request)
    return ok(render.member(state, state.require_member(member_id)))


@router.route("POST", ACCT + "/members")
def add_member(request, account_id):
    body = request.json_object()
    state = _state(request)
    member = state.add_member(body.get("email"), roles=body.get("roles"), policies=body.get("policies"), status=body.get("status", "pending"))
    result = render.member(state, member)
    audit(request, "create", "account_member", member["id"], new=result)
    return ok(result)


@router.route("PUT", ACCT + "/members/{member_id}")
def update_member(request, account_id, member_id):
    body = request.json_object()
    state = _state(request)
    old = render.member(state, state.require_member(member_id))
    member = state.update_member(member_id, roles=body.get("roles"), policies=body.get("policies"))
    result = render.member(state, member)
    audit(request, "update", "account_member", member_id, old=old, new=result)
    return ok(result)


@router.route("DELETE", ACCT + "/members/{member_id}")
def remove_member(request, account_id, member_id):
    state = _state(request)
    old = render.member(state, state.require_member(member_id))
    state.delete_member(member_id)
    audit(request, "delete", "account_member", member_id, old=old)
    return ok({"id": member_id})


# ---- audit logs ---------------------------------------------------------------------------------------


def _instant(request, name):
    raw = request.arg(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), timezone.utc)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, INVALID_PARAMETER, f"{name} must be an RFC 3339 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@router.route("GET", ACCT + "/audit_logs")
def list_audit_logs(request, account_id):
    state = _state(request)
    page, per_page = page_args(request, 100, 1, 1000)
    direction = choice_arg(request, "direction", ("desc", "asc"), "desc")
    since, before = _instant(request, "since"), _instant(request, "before")
    entry_id, action, actor_email = request.arg("id"), request.arg("action.type"), request.arg("actor.email")

    def matching():
        entries = state.audit if direction == "asc" else reversed(state.audit)
        for entry in entries:
            when = datetime.fromisoformat(entry["when"].replace("Z", "+00:00"))
            if since and when < since or before and when >= before:
                continue
            if entry_id and entry["id"] != entry_id:
                continue
            if action and entry["action"]["type"] != action:
                continue
            if actor_email and entry["actor"].get("email") != actor_email:
                continue
            yield entry

    return paged(matching(), count(matching()), page, per_page, lambda e: json.loads(json.dumps(e)))
