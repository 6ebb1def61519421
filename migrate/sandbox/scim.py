"""The dashboard SCIM v2 service under /accounts/{id}/scim/v2 (RFC 7643/7644 as Cloudflare implements it).

System groups (`cloudflare-v1-...`, the legacy virtual groups) are read-only except membership,
and their membership grants and revokes the group's role on the account member; every user
group is also a custom SCIM group with the same id. Errors from this service use the
SCIM error envelope; authentication and rate limiting happen before it, in the v4 shape.
"""

import re
from itertools import islice

from . import render
from .api import audit
from .errors import ApiError, ScimError
from .routing import SCIM_JSON, Response, Router
from .state import reserved_name

router = Router()
BASE = "/accounts/{account_id}/scim/v2"
# The ServiceProviderConfig advertises filter.maxResults = 100, so `count` is clamped to 100.
MAX_RESULTS = 100
_FILTER = re.compile(r'^\s*([A-Za-z][\w.]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^\s*members\s*\[\s*value\s+eq\s+"([^"]*)"\s*\]\s*$', re.IGNORECASE)


def scim(body, status=200):
    return Response(status, body, SCIM_JSON)


def _base(request):
    return f"{request.context.base_url}/accounts/{request.context.account_id}/scim/v2"


def _index_args(request):
    """startIndex is 1-based (below 1 means 1); count is clamped to [0, MAX_RESULTS]."""
    values = []
    for name, default in (("startIndex", 1), ("count", MAX_RESULTS)):
        raw = request.arg(name)
        if raw is None or raw == "":
            values.append(default)
            continue
        try:
            values.append(int(raw))
        except ValueError:
            raise ScimError(400, f"{name} must be an integer", "invalidValue") from None
    start, count = values
    return max(start, 1), min(max(count, 0), MAX_RESULTS)


def _filter_value(request, attribute):
    raw = request.arg("filter")
    if raw is None:
        return None
    found = _FILTER.match(raw)
    if not found or found.group(1).casefold() != attribute.casefold():
        raise ScimError(400, f'Unsupported filter: only {attribute} eq "<value>" is supported', "invalidFilter")
    return found.group(2).replace('\\"', '"').replace("\\\\", "\\")


def _page(ids, total, start, count, render_one):
    resources = [render_one(item) for item in islice(ids, start - 1, start - 1 + count)]
    return scim(render.scim_list(resources, total, start))


# ---- Users ----------------------------------------------------------------------------------------


@router.route("GET", BASE + "/Users", scim=True)
def list_users(request, account_id):
    state = request.context.state
    start, count = _index_args(request)
    wanted = _filter_value(request, "userName")
    base = _base(request)
    if wanted is not None:
        user_id = state.scim_user_ids_by_name.get(wanted.casefold())
        ids = [user_id] if user_id else []
        total = len(ids)
    else:
        ids, total = iter(state.scim_users), len(state.scim_users)
    return _page(ids, total, start, count, lambda i: render.scim_user(state, state.scim_users[i], base))


def _require_user(state, user_id):
    user = state.scim_users.get(user_id)
    if user is None:
        raise ScimError(404, f"User {user_id} not found")
    return user


@router.route("GET", BASE + "/Users/{user_id}", scim=True)
def get_user(request, account_id, user_id):
    state = request.context.state
    return scim(render.scim_user(state, _require_user(state, user_id), _base(request)))


def _user_body(request, creating):
    body = request.json(scim=True)
    if not isinstance(body, dict):
        raise ScimError(400, "Request body must be a JSON object", "invalidSyntax")
    if render.SCIM_USER not in (body.get("schemas") or []):
        raise ScimError(400, f"schemas must contain {render.SCIM_USER}", "invalidValue")
    user_name = body.get("userName")
    if not isinstance(user_name, str) or "@" not in user_name:
        raise ScimError(400, "userName is required and must be an email address", "invalidValue")
    emails = body.get("emails")
    if creating and not emails:
        raise ScimError(400, "emails is required, with a primary email matching userName", "invalidValue")
    primary = [e.get("value") for e in emails or [] if isinstance(e, dict) and e.get("primary")]
    if primary and primary[0].casefold() != user_name.casefold():
        raise ScimError(400, "The primary email must match userName", "invalidValue")
    if creating and body.get("active") is not True:
        raise ScimError(400, "active must be true when creating a user", "invalidValue")
    return body


@router.route("POST", BASE + "/Users", scim=True)
def create_user(request, account_id):
    body = _user_body(request, creating=True)
    state = request.context.state
    user = state.scim_create_user(body["userName"], body.get("name"), body.get("displayName"), body.get("externalId"))
    result = render.scim_user(state, user, _base(request))
    audit(request, "create", "scim_user", user["id"], new=result)
    return scim(result, 201)


@router.route("PUT", BASE + "/Users/{user_id}", scim=True)
def replace_user(request, account_id, user_id):
    state = request.context.state
    user = _require_user(state, user_id)
    body = _user_body(request, creating=False)
    old = render.scim_user(state, user, _base(request))
    _set_user_name(state, user, body["userName"])
    for attribute in ("name", "displayName", "externalId"):
        if attribute in body:
            user[attribute] = body[attribute]
        else:
            user.pop(attribute, None)
    if "active" in body:
        state.scim_set_user_active(user, body["active"])
    result = render.scim_user(state, user, _base(request))
    audit(request, "update", "scim_user", user_id, old=old, new=result)
    return scim(result)


def _set_user_name(state, user, user_name):
    if user_name.casefold() != user["userName"].casefold():
        if user_name.casefold() in state.scim_user_ids_by_name:
            raise ScimError(409, f"User '{user_name}' already exists", "uniqueness")
    state.scim_rename_user(user, user_name)


_USER_PATHS = {
    "active": ("active",),
    "username": ("userName",),
    'emails[type eq "work"].value': ("userName",),
    "name.givenname": ("name", "givenName"),
    "name.familyname": ("name", "familyName"),
    "displayname": ("displayName",),
    "externalid": ("externalId",),
}


@router.route("PATCH", BASE + "/Users/{user_id}", scim=True)
def patch_user(request, account_id, user_id):
    state = request.context.state
    user = _require_user(state, user_id)
    operations = _operations(request)
    old = render.scim_user(state, user, _base(request))
    for op in operations:
        if op["op"].casefold() != "replace":
            continue  # Cloudflare accepts add/remove on Users but ignores them
        path, value = op.get("path"), op.get("value")
        changes = {}
        if path is None:
            if not isinstance(value, dict):
                raise ScimError(400, "replace without a path needs an object value", "invalidValue")
            for key, item in value.items():
                if key == "name" and isinstance(item, dict):
                    changes.update({("name", k): v for k, v in item.items()})
                else:
                    changes[(key,)] = item
        else:
            target = _USER_PATHS.get(path.strip().casefold()) or _USER_PATHS.get(path.strip())
            if target is None:
                raise ScimError(400, f"Unsupported path: {path}", "invalidPath")
            changes[target] = value
        for target, item in changes.items():
            _apply_user_change(state, user, target, item)
    result = render.scim_user(state, user, _base(request))
    audit(request, "update", "scim_user", user_id, old=old, new=result)
    return scim(result)


def _apply_user_change(state, user, target, value):
    key = target[0]
    if key == "active":
        if not isinstance(value, bool):
            raise ScimError(400, "active must be a boolean", "invalidValue")
        state.scim_set_user_active(user, value)
    elif key == "userName":
        if not isinstance(value, str) or "@" not in value:
            raise ScimError(400, "userName must be an email address", "invalidValue")
        _set_user_name(state, user, value)
    elif key == "name" and len(target) == 2:
        user.setdefault("name", {})[target[1]] = value
    elif key in ("displayName", "externalId"):
        user[key] = value
    else:
        raise ScimError(400, f"Unsupported attribute: {key}", "invalidPath")


def _operations(request):
    body = request.json(scim=True)
    if not isinstance(body, dict) or not isinstance(body.get("Operations"), list):
        raise ScimError(400, "PATCH needs a PatchOp body with an Operations array", "invalidSyntax")
    for op in body["Operations"]:
        if not isinstance(op, dict) or str(op.get("op", "")).casefold() not in ("add", "remove", "replace"):
            raise ScimError(400, "Each operation needs op add, remove or replace", "invalidValue")
    return body["Operations"]


# ---- Groups ---------------------------------------------------------------------------------------


@router.route("GET", BASE + "/Groups", scim=True)
def list_groups(request, account_id):
    state = request.context.state
    start, count = _index_args(request)
    wanted = _filter_value(request, "displayName")
    base = _base(request)
    if wanted is not None:
        group_id = state.scim_group_by_display_name(wanted)
        ids = [group_id] if group_id else []
        total = len(ids)
    else:
        ids, total = state.scim_group_ids(), state.scim_group_count()
    return _page(ids, total, start, count, lambda i: render.scim_group(state, i, base))


def _require_group(state, group_id):
    if not state.is_scim_group(group_id):
        raise ScimError(404, f"Group {group_id} not found")
    return group_id


@router.route("GET", BASE + "/Groups/{group_id}", scim=True)
def get_group(request, account_id, group_id):
    state = request.context.state
    _require_group(state, group_id)
    return scim(render.scim_group(state, group_id, _base(request), with_members=True))


@router.route("POST", BASE + "/Groups", scim=True)
def create_group(request, account_id):
    body = request.json(scim=True)
    if not isinstance(body, dict):
        raise ScimError(400, "Request body must be a JSON object", "invalidSyntax")
    state = request.context.state
    group = state.scim_create_group(body.get("displayName"), body.get("externalId"))
    members = body.get("members") or []
    if members and group["id"] in state.scim_groups:  # a virtual group, pushed before end of life
        state.scim_change_system_members(group["id"], "add", [_member_value(m) for m in members])
    elif members:
        ids = [state.member_id_for_user_tag(_member_value(m)) for m in members]
        state.add_group_members(group["id"], ids, via_scim=True)
    result = render.scim_group(state, group["id"], _base(request), with_members=True)
    audit(request, "create", "scim_group", group["id"], new=result)
    return scim(result, 201)


@router.route("PATCH", BASE + "/Groups/{group_id}", scim=True)
def patch_group(request, account_id, group_id):
    state = request.context.state
    _require_group(state, group_id)
    operations = _operations(request)
    base = _base(request)
    old = render.scim_group(state, group_id, base, with_members=True)
    system = group_id in state.scim_groups
    for op in operations:
        kind, path, value = op["op"].casefold(), op.get("path"), op.get("value")
        if path is None and kind == "replace" and isinstance(value, dict):
            # IdPs (authentik) send the whole group as one path-less replace.
            for attribute, item in value.items():
                if attribute.casefold() not in _READ_ONLY_GROUP_ATTRIBUTES:
                    _patch_group_attribute(state, group_id, system, "replace", attribute, item)
        elif path is None:
            raise ScimError(400, "An operation without a path must be a replace with an object value", "noTarget")
        else:
            _patch_group_attribute(state, group_id, system, kind, path, value)
    result = render.scim_group(state, group_id, base, with_members=True)
    audit(request, "update", "scim_group", group_id, old=old, new=result)
    return scim(result)


_READ_ONLY_GROUP_ATTRIBUTES = {"schemas", "id", "meta"}


def _patch_group_attribute(state, group_id, system, kind, path, value):
    single = _MEMBER_PATH.match(path)
    attribute = "members" if single else path.strip().casefold()
    if attribute == "members":
        tags = [single.group(1)] if single else [_member_value(v) for v in (value or [])]
        if single and kind != "remove":
            raise ScimError(400, "A filtered members path is only valid with op remove", "invalidPath")
        if kind == "remove" and not single and value is None:
            tags = None  # remove all members
        _change_members(state, group_id, system, kind, tags)
    elif attribute in ("displayname", "externalid"):
        if system:
            if attribute == "displayname" and value == state.scim_groups[group_id]["displayName"]:
                return  # restating the current name is not a change
            raise ScimError(400, "System groups are read-only except for membership", "mutability")
        if not isinstance(value, str):
            raise ScimError(400, f"{path} needs a string value", "invalidValue")
        if attribute == "displayname":
            if reserved_name(value):
                raise ScimError(400, "displayName must not begin with the reserved prefix 'CF'", "invalidValue")
            try:
                state.update_user_group(group_id, name=value, via_scim=True)
            except ApiError as err:
                raise ScimError(409, err.message, "uniqueness") from None
        else:
            state.user_groups[group_id]["external_id"] = value
    else:
        raise ScimError(400, f"Unsupported path: {path}", "invalidPath")


def _member_value(item):
    if not isinstance(item, dict) or not isinstance(item.get("value"), str):
        raise ScimError(400, 'Each member needs a "value" (user id)', "invalidValue")
    return item["value"]


def _change_members(state, group_id, system, kind, tags):
    if system:
        # Joining a system (virtual) group grants its role to the member; leaving revokes it.
        state.scim_change_system_members(group_id, kind, tags)
        return
    group = state.user_groups[group_id]
    if tags is None:
        state.replace_group_members(group_id, [], via_scim=True)
        return
    ids = [state.member_id_for_user_tag(tag) for tag in tags]
    if kind == "add":
        state.add_group_members(group_id, ids, via_scim=True)
    elif kind == "replace":
        state.replace_group_members(group_id, ids, via_scim=True)
    else:
        for member_id in ids:
            if member_id in group["members"]:
                state.remove_group_member(group_id, member_id, via_scim=True)


@router.route("PUT", BASE + "/Groups/{group_id}", scim=True)
def replace_group(request, account_id, group_id):
    """Full-state group PUT (RFC 7644 3.5.1), accepted by Cloudflare since 2026-08."""
    state = request.context.state
    _require_group(state, group_id)
    body = request.json(scim=True)
    if not isinstance(body, dict) or not isinstance(body.get("displayName"), str):
        raise ScimError(400, "PUT needs the whole group, with displayName", "invalidValue")
    base = _base(request)
    old = render.scim_group(state, group_id, base, with_members=True)
    system = group_id in state.scim_groups
    _patch_group_attribute(state, group_id, system, "replace", "displayName", body["displayName"])
    if "externalId" in body and not system:
        _patch_group_attribute(state, group_id, system, "replace", "externalId", body["externalId"])
    _change_members(state, group_id, system, "replace", [_member_value(m) for m in body.get("members") or []])
    result = render.scim_group(state, group_id, base, with_members=True)
    audit(request, "update", "scim_group", group_id, old=old, new=result)
    return scim(result)


@router.route("DELETE", BASE + "/Groups/{group_id}", scim=True)
def delete_group(request, account_id, group_id):
    state = request.context.state
    _require_group(state, group_id)
    if group_id in state.scim_groups:
        raise ScimError(400, "System groups cannot be deleted", "mutability")
    old = render.scim_group(state, group_id, _base(request), with_members=True)
    state.delete_user_group(group_id, via_scim=True)
    audit(request, "delete", "scim_group", group_id, old=old)
    return Response(204, None, SCIM_JSON)


# ---- discovery ------------------------------------------------------------------------------------


@router.route("GET", BASE + "/ServiceProviderConfig", scim=True)
def service_provider_config(request, account_id):
    return scim(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://developers.cloudflare.com/fundamentals/account/account-security/scim-setup/",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "OAuth Bearer Token",
                    "description": "Authentication via an API token with SCIM Provisioning permission",
                    "specUri": "http://www.rfc-editor.org/info/rfc6750",
                    "primary": True,
                }
            ],
        }
    )


def _resource_types(base):
    return [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": kind,
            "name": kind,
            "endpoint": f"/{kind}s",
            "description": description,
            "schema": schema,
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{kind}"},
        }
        for kind, description, schema in (
            ("User", "User Account", render.SCIM_USER),
            ("Group", "Group", render.SCIM_GROUP),
        )
    ]


@router.route("GET", BASE + "/ResourceTypes", scim=True)
def list_resource_types(request, account_id):
    types = _resource_types(_base(request))
    return scim(render.scim_list(types, len(types), 1))


@router.route("GET", BASE + "/ResourceTypes/{type_id}", scim=True)
def get_resource_type(request, account_id, type_id):
    for item in _resource_types(_base(request)):
        if item["id"] == type_id:
            return scim(item)
    raise ScimError(404, f"ResourceType {type_id} not found")


def _attribute(name, kind="string", multi=False, required=False, mutability="readWrite", sub=None):
    attr = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": name,
        "required": required,
        "caseExact": False,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "server" if name == "userName" else "none",
    }
    if sub:
        attr["subAttributes"] = sub
    return attr


def _schemas(base):
    user = [
        _attribute("userName", required=True),
        _attribute("name", "complex", sub=[_attribute("givenName"), _attribute("familyName"), _attribute("formatted", mutability="readOnly")]),
        _attribute("displayName"),
        _attribute("emails", "complex", multi=True, sub=[_attribute("value"), _attribute("type"), _attribute("primary", "boolean")]),
        _attribute("active", "boolean"),
        _attribute("externalId"),
        _attribute("groups", "complex", multi=True, mutability="readOnly", sub=[_attribute("value", mutability="readOnly")]),
    ]
    group = [
        _attribute("displayName", required=True),
        _attribute("externalId"),
        _attribute("members", "complex", multi=True, sub=[_attribute("value"), _attribute("display", mutability="readOnly")]),
    ]
    return [
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": urn,
            "name": name,
            "description": name,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
        }
        for urn, name, attributes in ((render.SCIM_USER, "User", user), (render.SCIM_GROUP, "Group", group))
    ]


@router.route("GET", BASE + "/Schemas", scim=True)
def list_schemas(request, account_id):
    schemas = _schemas(_base(request))
    return scim(render.scim_list(schemas, len(schemas), 1))


@router.route("GET", BASE + "/Schemas/{schema_id}", scim=True)
def get_schema(request, account_id, schema_id):
    for item in _schemas(_base(request)):
        if item["id"] == schema_id:
            return scim(item)
    raise ScimError(404, f"Schema {schema_id} not found")
