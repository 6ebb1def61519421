"""The /api/v3 endpoints vgmigrate uses, with DRF's error shapes and authentik's pagination.

Handlers run under the state lock. A write that authentik answers with a signal (SCIM direct
sync, membership sync, delete) appends a job to `request.jobs`; the server runs the jobs after
releasing the lock and before answering. A handler may return a callable instead of a Response:
the server calls it outside the lock (sync/object, whose answer is the sync's log).
"""

import copy
import json
import math
import re
import uuid

from ..routing import Response, Router
from .state import (
    AUTH_MODES, COMPATIBILITY_MODES, FULL_SYNC_ACTOR, GROUP_MODEL, USER_MODEL, USER_TYPES, now,
)

router = Router()
DEFAULT_PAGE_SIZE = 100


class AkError(Exception):
    def __init__(self, status, body):
        super().__init__(str(body))
        self.status, self.body = status, body


def not_found(what="No object matches the given query."):
    return AkError(404, {"detail": what, "code": "not_found"})


def invalid(field, message):
    return AkError(400, {field: [message]})


def ok(body, status=200):
    return Response(status, body)


def no_content():
    return Response(204, None)


# ---- request helpers ------------------------------------------------------------------------------


def body_object(request):
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else {}
    except (UnicodeDecodeError, ValueError) as err:
        raise AkError(400, {"detail": f"JSON parse error - {err}", "code": "parse_error"}) from None
    if not isinstance(body, dict):
        raise AkError(400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(body).__name__}."]})
    return body


def flag(request, name, default):
    raw = request.arg(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    return default  # django-filter ignores a boolean it cannot read


def values(request, name):
    return [v for v in request.query.get(name, []) if v != ""]


def valid_uuid(text):
    try:
        return str(uuid.UUID(str(text)))
    except (ValueError, AttributeError, TypeError):
        return None


def paginate(request, items, render, state):
    """authentik's pagination: page numbers, `next`/`previous` 0 when none, 404 past the end."""
    try:
        size = int(request.arg("page_size") or DEFAULT_PAGE_SIZE)
        if size < 1:
            raise ValueError
    except ValueError:
        size = DEFAULT_PAGE_SIZE  # DRF falls back to the default for a bad page_size
    raw_page = request.arg("page") or "1"
    count = len(items)
    pages = max(1, math.ceil(count / size))
    try:
        page = pages if raw_page == "last" else int(raw_page)
    except ValueError:
        raise AkError(404, {"detail": "Invalid page."}) from None
    if page < 1 or page > pages:
        raise AkError(404, {"detail": "Invalid page."})
    chunk = items[(page - 1) * size: page * size]
    start = (page - 1) * size + 1 if chunk else 0
    body = {
        "pagination": {
            "next": page + 1 if page < pages else 0,
            "previous": page - 1 if page > 1 else 0,
            "count": count,
            "current": page,
            "total_pages": pages,
            "start_index": start,
            "end_index": start + len(chunk) - 1 if chunk else 0,
        },
        "results": [render(item) for item in chunk],
    }
    if state.version.tasks_api:  # the AKQL autocomplete member arrived with 2025.8
        body["autocomplete"] = {}
    return ok(body)


def order(request, items, fields, default):
    """`ordering=field` / `-field`; an unknown field is ignored, as DRF's OrderingFilter does."""
    wanted = request.arg("ordering") or default
    key = wanted.lstrip("-")
    if key not in fields:
        key, wanted = default.lstrip("-"), default
    return sorted(items, key=lambda item: fields[key](item), reverse=wanted.startswith("-"))


_AKQL = re.compile(r'^\s*(\w+)\s*(=|!=|~|!~|startswith|endswith|not\s+startswith|not\s+endswith)\s*"((?:[^"\\]|\\.)*)"\s*$', re.I)


def name_search(state, query):
    """`search`: case-insensitive substring of the name; from 2026.5 also a single AKQL comparison
    on `name` (e.g. `name startswith "CF-"`), which older servers take as a plain substring."""
    found = _AKQL.match(query) if state.version.akql else None
    if not found or found.group(1).lower() != "name":
        needle = query.casefold()
        return lambda name: needle in name.casefold()
    op, value = " ".join(found.group(2).lower().split()), found.group(3).replace('\\"', '"').casefold()
    tests = {
        "=": lambda n: n == value, "!=": lambda n: n != value, "~": lambda n: value in n, "!~": lambda n: value not in n,
        "startswith": lambda n: n.startswith(value), "endswith": lambda n: n.endswith(value),
        "not startswith": lambda n: not n.startswith(value), "not endswith": lambda n: not n.endswith(value),
    }
    return lambda name: tests[op](name.casefold())


def _string(body, field, required, errors, allow_blank=False):
    if field not in body:
        if required:
            errors[field] = ["This field is required."]
        return
    value = body[field]
    if value is None:
        errors[field] = ["This field may not be null."]
    elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
        errors[field] = ["Not a valid string."]
    elif not allow_blank and str(value).strip() == "":
        errors[field] = ["This field may not be blank."]


def _bool(body, field, errors):
    if field in body and not isinstance(body[field], bool):
        errors[field] = ["Must be a valid boolean."]


def _dict(body, field, errors):
    if field in body and not isinstance(body[field], dict):
        errors[field] = [f'Expected a dictionary of items but got type "{type(body[field]).__name__}".']


def _choice(body, field, choices, errors):
    if field in body and body[field] not in choices:
        errors[field] = [f'"{body[field]}" is not a valid choice.']


def _pk_list(body, field, exists, errors, kind=int):
    """A list of primary keys that must exist (DRF PrimaryKeyRelatedField many=True)."""
    if field not in body:
        return
    items = body[field]
    if not isinstance(items, list):
        errors[field] = [f'Expected a list of items but got type "{type(items).__name__}".']
        return
    for item in items:
        if kind is int and (not isinstance(item, int) or isinstance(item, bool)):
            errors[field] = [f"Incorrect type. Expected pk value, received {type(item).__name__}."]
            return
        if kind is str and valid_uuid(item) is None:
            errors[field] = [f"“{item}” is not a valid UUID."]
            return
        if not exists(item if kind is int else valid_uuid(item)):
            errors[field] = [f'Invalid pk "{item}" - object does not exist.']
            return


def _raise(errors):
    if errors:
        raise AkError(400, errors)


# ---- admin and core/users -------------------------------------------------------------------------


@router.route("GET", "/admin/version/")
def version(request):
    text = request.context.state.version.text
    return ok({"version_current": text, "version_latest": text, "version_latest_valid": True,
               "build_hash": "", "outdated": False, "outpost_outdated": False})


@router.route("GET", "/core/users/me/")
def me(request):
    state = request.context.state
    return ok({"user": state.render_user_self(state.users[state.owner_pk])})


@router.route("GET", "/core/users/")
def list_users(request):
    state = request.context.state
    users = list(state.users.values())
    for field in ("username", "email", "uuid", "path", "name"):
        wanted = request.arg(field)
        if wanted is not None:
            users = [u for u in users if str(u[field]) == wanted]
    if request.arg("is_active") is not None:
        users = [u for u in users if u["is_active"] == flag(request, "is_active", True)]
    types = values(request, "type")
    for t in types:
        if t not in USER_TYPES:
            raise invalid("type", f"Select a valid choice. {t} is not one of the available choices.")
    if types:
        users = [u for u in users if u["type"] in types]
    if request.arg("path_startswith") is not None:
        users = [u for u in users if u["path"].startswith(request.arg("path_startswith"))]
    by_pk = values(request, "groups_by_pk")
    if by_pk:
        uuids = []
        for raw in by_pk:
            gid = valid_uuid(raw)
            if gid is None or gid not in state.groups:
                raise invalid("groups_by_pk", f"Select a valid choice. {raw} is not one of the available choices.")
            uuids.append(gid)
        members = set().union(*(state.groups[g]["users"] for g in uuids))
        users = [u for u in users if u["pk"] in members]
    by_name = values(request, "groups_by_name")
    if by_name:
        members = set()
        for name in by_name:
            group = state.group_by_name(name)
            if group is None:
                raise invalid("groups_by_name", f"Select a valid choice. {name} is not one of the available choices.")
            members |= group["users"]
        users = [u for u in users if u["pk"] in members]
    search = request.arg("search")
    if search is not None:
        needle = search.casefold()
        users = [u for u in users if any(needle in str(u[f]).casefold() for f in ("username", "name", "email"))]
    users = order(request, users, {"username": lambda u: u["username"], "pk": lambda u: u["pk"], "name": lambda u: u["name"],
                                   "email": lambda u: u["email"], "last_login": lambda u: u["last_login"] or ""}, "username")
    include_groups = flag(request, "include_groups", True)
    return paginate(request, users, lambda u: state.render_user(u, include_groups), state)


def _user(state, raw):
    try:
        pk = int(raw)
    except ValueError:
        raise not_found("No User matches the given query.") from None
    if pk not in state.users:
        raise not_found("No User matches the given query.")
    return state.users[pk]


@router.route("GET", "/core/users/{id}/")
def get_user(request, id):  # noqa: A002 - the schema's parameter name
    state = request.context.state
    return ok(state.render_user(_user(state, id), flag(request, "include_groups", True)))


def _user_fields(state, body, creating, user=None):
    errors = {}
    _string(body, "username", creating, errors)
    if "username" in body and "username" not in errors:
        name = str(body["username"])
        if len(name) > 150:
            errors["username"] = ["Ensure this field has no more than 150 characters."]
        elif any(u["username"] == name and u is not user for u in state.users.values()):
            errors["username"] = ["This field must be unique."]
    _string(body, "name", creating, errors, allow_blank=True)
    _string(body, "email", False, errors, allow_blank=True)
    if isinstance(body.get("email"), str) and body["email"] and "@" not in body["email"]:
        errors["email"] = ["Enter a valid email address."]
    _string(body, "path", False, errors)
    _bool(body, "is_active", errors)
    _dict(body, "attributes", errors)
    _choice(body, "type", USER_TYPES, errors)
    _pk_list(body, "groups", lambda g: g in state.groups, errors, kind=str)
    _pk_list(body, "roles", lambda _: False, errors, kind=str)
    _raise(errors)


def _save_user(request, user, body):
    """Apply the fields; `groups` replaces the user's groups (m2m signals per group changed)."""
    state = request.context.state
    for field in ("username", "name", "email", "path", "is_active", "type", "attributes"):
        if field in body:
            user[field] = copy.deepcopy(body[field])
    user["last_updated"] = now()
    pusher, pk = request.context.pusher, user["pk"]
    request.jobs.append(lambda: pusher.direct(USER_MODEL, pk))
    if "groups" in body:
        wanted = {valid_uuid(g) for g in body["groups"]}
        for group in state.groups.values():
            gid = group["pk"]
            if gid in wanted and pk not in group["users"]:
                group["users"].add(pk)
                request.jobs.append(lambda gid=gid: pusher.m2m(gid, "add", {pk}))
            elif gid not in wanted and pk in group["users"]:
                group["users"].discard(pk)
                request.jobs.append(lambda gid=gid: pusher.m2m(gid, "remove", {pk}))


@router.route("POST", "/core/users/")
def create_user(request):
    state = request.context.state
    body = body_object(request)
    _user_fields(state, body, creating=True)
    user = state.add_user(str(body["username"]), str(body.get("name", "")))
    _save_user(request, user, body)
    return ok(state.render_user(user), 201)


def _update_user(request, id, partial):  # noqa: A002
    state = request.context.state
    user = _user(state, id)
    body = body_object(request)
    _user_fields(state, body, creating=not partial, user=user)
    _save_user(request, user, body)
    return ok(state.render_user(user))


@router.route("PATCH", "/core/users/{id}/")
def patch_user(request, id):  # noqa: A002
    return _update_user(request, id, partial=True)


@router.route("PUT", "/core/users/{id}/")
def put_user(request, id):  # noqa: A002
    return _update_user(request, id, partial=False)


@router.route("DELETE", "/core/users/{id}/")
def delete_user(request, id):  # noqa: A002
    state = request.context.state
    user = _user(state, id)
    if user["pk"] == state.owner_pk:
        raise AkError(400, {"non_field_errors": ["Cannot delete the user the token belongs to."]})
    mappings = []
    for link_id, link in list(state.user_links.items()):
        if link["user"] == user["pk"]:
            mappings.append((link["provider"], link["scim_id"]))
            del state.user_links[link_id]
    for group in state.groups.values():
        group["users"].discard(user["pk"])
    del state.users[user["pk"]]
    state.unbound_users.discard(user["pk"])
    pusher, label = request.context.pusher, user["username"]
    request.jobs.append(lambda: pusher.deleted(USER_MODEL, mappings, label))
    return no_content()


# ---- core/groups ----------------------------------------------------------------------------------


def _group(state, raw):
    gid = valid_uuid(raw)
    if gid is None or gid not in state.groups:
        raise not_found("No Group matches the given query.")
    return state.groups[gid]


def _render_group_args(request):
    return {
        "include_users": flag(request, "include_users", True),
        "include_children": flag(request, "include_children", False),
        "include_parents": flag(request, "include_parents", False),
        "include_inherited_roles": flag(request, "include_inherited_roles", False),
    }


@router.route("GET", "/core/groups/")
def list_groups(request):
    state = request.context.state
    groups = list(state.groups.values())
    name = request.arg("name")
    if name is not None:
        groups = [g for g in groups if g["name"] == name]
    if request.arg("is_superuser") is not None:
        groups = [g for g in groups if g["is_superuser"] == flag(request, "is_superuser", False)]
    by_pk = values(request, "members_by_pk")
    if by_pk:
        pks = set()
        for raw in by_pk:
            try:
                pk = int(raw)
            except ValueError:
                raise invalid("members_by_pk", f"Select a valid choice. {raw} is not one of the available choices.") from None
            if pk not in state.users:
                raise invalid("members_by_pk", f"Select a valid choice. {raw} is not one of the available choices.")
            pks.add(pk)
        groups = [g for g in groups if g["users"] & pks]
    by_name = values(request, "members_by_username")
    if by_name:
        pks = set()
        for username in by_name:
            user = next((u for u in state.users.values() if u["username"] == username), None)
            if user is None:
                raise invalid("members_by_username", f"Select a valid choice. {username} is not one of the available choices.")
            pks.add(user["pk"])
        groups = [g for g in groups if g["users"] & pks]
    attributes = request.arg("attributes")
    if attributes is not None:
        try:
            wanted = json.loads(attributes)
            if not isinstance(wanted, dict):
                raise ValueError
        except ValueError:
            raise invalid("attributes", "filter must be a JSON dictionary") from None
        groups = [g for g in groups if all(g["attributes"].get(k) == v for k, v in wanted.items())]
    search = request.arg("search")
    if search is not None:
        test = name_search(state, search)
        groups = [g for g in groups if test(g["name"])]
    groups = order(request, groups, {"name": lambda g: g["name"], "num_pk": lambda g: g["num_pk"],
                                     "is_superuser": lambda g: g["is_superuser"]}, "name")
    args = _render_group_args(request)
    return paginate(request, groups, lambda g: state.render_group(g, **args), state)


@router.route("GET", "/core/groups/{group_uuid}/")
def get_group(request, group_uuid):
    state = request.context.state
    return ok(state.render_group(_group(state, group_uuid), **_render_group_args(request)))


def _group_fields(state, body, creating, group=None):
    errors = {}
    _string(body, "name", creating, errors)
    if "name" in body and "name" not in errors:
        other = state.group_by_name(str(body["name"]))
        if other is not None and other is not group:
            errors["name"] = ["group with this name already exists."]
    _bool(body, "is_superuser", errors)
    _dict(body, "attributes", errors)
    _pk_list(body, "users", lambda pk: pk in state.users, errors)
    _pk_list(body, "roles", lambda _: False, errors, kind=str)
    if state.version.multi_parents:
        _pk_list(body, "parents", lambda g: g in state.groups and (group is None or g != group["pk"]), errors, kind=str)
    elif body.get("parent") is not None and (valid_uuid(body["parent"]) not in state.groups):
        errors["parent"] = [f'Invalid pk "{body["parent"]}" - object does not exist.']
    _raise(errors)


def _apply_group(state, group, body):
    if "name" in body:
        group["name"] = str(body["name"])
    for field in ("is_superuser", "attributes"):
        if field in body:
            group[field] = copy.deepcopy(body[field])
    if state.version.multi_parents and "parents" in body:
        group["parents"] = [valid_uuid(p) for p in body["parents"]]
    elif not state.version.multi_parents and "parent" in body:
        group["parents"] = [valid_uuid(body["parent"])] if body["parent"] else []


@router.route("POST", "/core/groups/")
def create_group(request):
    state = request.context.state
    body = body_object(request)
    _group_fields(state, body, creating=True)
    group = state.add_group(str(body["name"]), users=body.get("users") or ())
    _apply_group(state, group, body)
    pusher = request.context.pusher
    # post_save: the task runs after the commit and sees the members too (so one create + add).
    request.jobs.append(lambda: pusher.direct(GROUP_MODEL, group["pk"]))
    return ok(state.render_group(group), 201)


def _update_group(request, group_uuid, partial):
    state = request.context.state
    group = _group(state, group_uuid)
    body = body_object(request)
    _group_fields(state, body, creating=not partial, group=group)
    before = set(group["users"])
    _apply_group(state, group, body)
    pusher = request.context.pusher
    gid = group["pk"]
    # save() fires post_save (a full write of the group) on every update; a `users` list replaces
    # the members, which fires the m2m signals for the users removed and added.
    request.jobs.append(lambda: pusher.direct(GROUP_MODEL, gid))
    if "users" in body:
        after = set(body["users"])
        group["users"] = after
        removed, added = before - after, after - before
        request.jobs.append(lambda: pusher.m2m(gid, "remove", removed))
        request.jobs.append(lambda: pusher.m2m(gid, "add", added))
    return ok(state.render_group(group))


@router.route("PATCH", "/core/groups/{group_uuid}/")
def patch_group(request, group_uuid):
    return _update_group(request, group_uuid, partial=True)


@router.route("PUT", "/core/groups/{group_uuid}/")
def put_group(request, group_uuid):
    return _update_group(request, group_uuid, partial=False)


@router.route("DELETE", "/core/groups/{group_uuid}/")
def delete_group(request, group_uuid):
    state = request.context.state
    group = _group(state, group_uuid)
    mappings = []
    for link_id, link in list(state.group_links.items()):
        if link["group"] == group["pk"]:
            mappings.append((link["provider"], link["scim_id"]))
            del state.group_links[link_id]
    del state.groups[group["pk"]]
    for other in state.groups.values():
        if group["pk"] in other["parents"]:
            other["parents"].remove(group["pk"])
    for provider in state.providers.values():
        if group["pk"] in provider["group_filters"]:
            provider["group_filters"].remove(group["pk"])
    pusher = request.context.pusher
    label = f"Group {group['name']}"
    request.jobs.append(lambda: pusher.deleted(GROUP_MODEL, mappings, label))
    return no_content()


def _member_change(request, group_uuid, action):
    state = request.context.state
    group = _group(state, group_uuid)
    body = body_object(request)
    if "pk" not in body:
        raise invalid("pk", "This field is required.")
    pk = body["pk"]
    if isinstance(pk, bool) or not isinstance(pk, (int, str)) or not str(pk).lstrip("-").isdigit():
        raise invalid("pk", "A valid integer is required.")
    pk = int(pk)
    if pk not in state.users:
        raise not_found("No User matches the given query.")
    changed = (pk not in group["users"]) if action == "add" else (pk in group["users"])
    if action == "add":
        group["users"].add(pk)
    else:
        group["users"].discard(pk)
    if changed:  # Django sends m2m signals only for rows that really changed
        pusher = request.context.pusher
        gid = group["pk"]
        request.jobs.append(lambda: pusher.m2m(gid, action, {pk}))
    return no_content()


@router.route("POST", "/core/groups/{group_uuid}/add_user/")
def add_user(request, group_uuid):
    return _member_change(request, group_uuid, "add")


@router.route("POST", "/core/groups/{group_uuid}/remove_user/")
def remove_user(request, group_uuid):
    return _member_change(request, group_uuid, "remove")


# ---- core/applications ----------------------------------------------------------------------------


_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
_APP_TEXT = ("meta_launch_url", "meta_icon", "meta_description", "meta_publisher", "group")


def _application(state, slug):
    if slug not in state.applications:
        raise not_found("No Application matches the given query.")
    return state.applications[slug]


@router.route("GET", "/core/applications/")
def list_applications(request):
    state = request.context.state
    apps = list(state.applications.values())
    for field in ("slug", "name", "group", "meta_publisher", "meta_description", "meta_launch_url"):
        wanted = request.arg(field)
        if wanted is not None:
            apps = [a for a in apps if a[field] == wanted]
    search = request.arg("search")
    if search is not None:
        apps = [a for a in apps if search.casefold() in (a["name"] + " " + a["slug"]).casefold()]
    apps = order(request, apps, {"name": lambda a: a["name"], "slug": lambda a: a["slug"]}, "name")
    return paginate(request, apps, state.render_application, state)


def _application_fields(state, body, creating, app=None):
    errors = {}
    _string(body, "name", creating, errors)
    _string(body, "slug", creating, errors)
    if "slug" in body and "slug" not in errors:
        if not _SLUG.match(str(body["slug"])):
            errors["slug"] = ["Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."]
        elif body["slug"] in state.applications and state.applications[body["slug"]] is not app:
            errors["slug"] = ["Application with this slug already exists."]
    if "provider" in body and body["provider"] is not None:
        pk = body["provider"]
        if isinstance(pk, bool) or not isinstance(pk, int) or pk not in state.providers:
            errors["provider"] = [f'Invalid pk "{pk}" - object does not exist.']
        else:
            owner = state.main_app(pk)
            if owner is not None and owner is not app:
                errors["provider"] = ["application with this provider already exists."]
    _pk_list(body, "backchannel_providers", lambda pk: pk in state.providers, errors)
    _bool(body, "open_in_new_tab", errors)
    _bool(body, "meta_hide", errors)
    _choice(body, "policy_engine_mode", ("all", "any"), errors)
    for field in _APP_TEXT:
        _string(body, field, False, errors, allow_blank=True)
    _raise(errors)


def _apply_application(state, app, body):
    for field in ("name", "provider", "open_in_new_tab", "meta_hide", "policy_engine_mode", *_APP_TEXT):
        if field in body:
            app[field] = body[field]
    if "backchannel_providers" in body:
        state.set_backchannel(app, body["backchannel_providers"])
    if "slug" in body and body["slug"] != app["slug"]:
        del state.applications[app["slug"]]
        app["slug"] = body["slug"]
        state.applications[app["slug"]] = app


@router.route("POST", "/core/applications/")
def create_application(request):
    state = request.context.state
    body = body_object(request)
    _application_fields(state, body, creating=True)
    app = state.add_application(str(body["name"]), body["slug"])
    _apply_application(state, app, body)
    return ok(state.render_application(app), 201)


@router.route("GET", "/core/applications/{slug}/")
def get_application(request, slug):
    state = request.context.state
    return ok(state.render_application(_application(state, slug)))


def _update_application(request, slug, partial):
    state = request.context.state
    app = _application(state, slug)
    body = body_object(request)
    _application_fields(state, body, creating=not partial, app=app)
    _apply_application(state, app, body)
    return ok(state.render_application(app))


@router.route("PATCH", "/core/applications/{slug}/")
def patch_application(request, slug):
    return _update_application(request, slug, partial=True)


@router.route("PUT", "/core/applications/{slug}/")
def put_application(request, slug):
    return _update_application(request, slug, partial=False)


@router.route("DELETE", "/core/applications/{slug}/")
def delete_application(request, slug):
    state = request.context.state
    del state.applications[_application(state, slug)["slug"]]
    return no_content()


# ---- providers/scim -------------------------------------------------------------------------------


def _provider(state, raw):
    try:
        pk = int(raw)
    except ValueError:
        raise not_found("No SCIM Provider matches the given query.") from None
    if pk not in state.providers:
        raise not_found("No SCIM Provider matches the given query.")
    return state.providers[pk]


@router.route("GET", "/providers/scim/")
def list_providers(request):
    state = request.context.state
    providers = list(state.providers.values())
    for field in ("url", "name"):
        wanted = request.arg(field)
        if wanted is not None:
            providers = [p for p in providers if p[field] == wanted]
    if request.arg("exclude_users_service_account") is not None:
        wanted = flag(request, "exclude_users_service_account", False)
        providers = [p for p in providers if p["exclude_users_service_account"] == wanted]
    if state.version.group_filters:
        for raw in values(request, "group_filters"):
            gid = valid_uuid(raw)
            providers = [p for p in providers if gid in p["group_filters"]]
    search = request.arg("search")
    if search is not None:
        providers = [p for p in providers if search.casefold() in p["name"].casefold()]
    providers = order(request, providers, {"name": lambda p: p["name"], "pk": lambda p: p["pk"]}, "name")
    return paginate(request, providers, state.render_provider, state)


def _provider_fields(state, body, creating, provider=None):
    errors = {}
    _string(body, "name", creating, errors)
    if "name" in body and "name" not in errors:
        if any(p["name"] == body["name"] and p is not provider for p in state.providers.values()):
            errors["name"] = ["provider with this name already exists."]
    _string(body, "url", creating, errors)
    _string(body, "token", False, errors, allow_blank=True)
    _choice(body, "auth_mode", AUTH_MODES, errors)
    modes = COMPATIBILITY_MODES + (("gitlab",) if state.version.token_write_only else ())
    _choice(body, "compatibility_mode", modes, errors)
    for field in ("verify_certificates", "exclude_users_service_account", "dry_run"):
        _bool(body, field, errors)
    if state.version.token_write_only:
        _bool(body, "discovery_enabled", errors)
    _dict(body, "auth_oauth_params", errors)
    for field in ("service_provider_config_cache_timeout", "sync_page_timeout"):
        _string(body, field, False, errors)
    if "sync_page_size" in body:
        size = body["sync_page_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            errors["sync_page_size"] = ["Ensure this value is greater than or equal to 1."]
    _pk_list(body, "property_mappings", lambda pm: pm in state.mappings, errors, kind=str)
    _pk_list(body, "property_mappings_group", lambda pm: pm in state.mappings, errors, kind=str)
    if state.version.group_filters:
        _pk_list(body, "group_filters", lambda g: g in state.groups, errors, kind=str)
    elif body.get("filter_group") is not None and valid_uuid(body["filter_group"]) not in state.groups:
        errors["filter_group"] = [f'Invalid pk "{body["filter_group"]}" - object does not exist.']
    _raise(errors)


_PROVIDER_FIELDS = (
    "name", "url", "token", "auth_mode", "auth_oauth_params", "compatibility_mode", "verify_certificates",
    "exclude_users_service_account", "dry_run", "service_provider_config_cache_timeout", "sync_page_timeout",
    "sync_page_size",
)


def _apply_provider(state, provider, body):
    for field in _PROVIDER_FIELDS:
        if field in body:
            provider[field] = copy.deepcopy(body[field])
    for field in ("property_mappings", "property_mappings_group"):
        if field in body:
            provider[field] = [valid_uuid(v) for v in body[field]]
    if state.version.group_filters and "group_filters" in body:
        provider["group_filters"] = list(dict.fromkeys(valid_uuid(v) for v in body["group_filters"]))
    if not state.version.group_filters and "filter_group" in body:
        provider["filter_group"] = valid_uuid(body["filter_group"]) if body["filter_group"] else None
    if state.version.token_write_only and "discovery_enabled" in body:
        provider["discovery_enabled"] = body["discovery_enabled"]


@router.route("POST", "/providers/scim/")
def create_provider(request):
    state = request.context.state
    body = body_object(request)
    _provider_fields(state, body, creating=True)
    provider = state.add_provider(str(body["name"]), str(body["url"]))
    _apply_provider(state, provider, body)
    pk, pusher = provider["pk"], request.context.pusher
    request.jobs.append(lambda: pusher.full_sync(pk))  # every save of the provider starts a full sync
    return ok(state.render_provider(provider), 201)


@router.route("GET", "/providers/scim/{id}/")
def get_provider(request, id):  # noqa: A002
    state = request.context.state
    return ok(state.render_provider(_provider(state, id)))


def _update_provider(request, id, partial):  # noqa: A002
    state = request.context.state
    provider = _provider(state, id)
    body = body_object(request)
    _provider_fields(state, body, creating=not partial, provider=provider)
    _apply_provider(state, provider, body)
    pk, pusher = provider["pk"], request.context.pusher
    request.jobs.append(lambda: pusher.full_sync(pk))
    return ok(state.render_provider(provider))


@router.route("PATCH", "/providers/scim/{id}/")
def patch_provider(request, id):  # noqa: A002
    return _update_provider(request, id, partial=True)


@router.route("PUT", "/providers/scim/{id}/")
def put_provider(request, id):  # noqa: A002
    return _update_provider(request, id, partial=False)


@router.route("DELETE", "/providers/scim/{id}/")
def delete_provider(request, id):  # noqa: A002
    state = request.context.state
    state.delete_provider(_provider(state, id)["pk"])
    return no_content()


@router.route("GET", "/providers/scim/{id}/sync/status/")
def sync_status(request, id):  # noqa: A002
    state = request.context.state
    provider = _provider(state, id)
    pk = provider["pk"]
    running = pk in request.context.pusher.running
    full = state.provider_tasks(pk, FULL_SYNC_ACTOR)
    if not state.version.tasks_api:
        # Before 2025.8: the system task of the last full sync.
        tasks = []
        if full:
            last = full[-1]
            status = {"done": "successful", "info": "successful"}.get(last["aggregated_status"], last["aggregated_status"])
            if status == "rejected":
                status = "error"
            tasks.append({
                "uuid": last["message_id"], "name": "scim_sync", "full_name": f"scim_sync:{last['uid']}",
                "uid": last["uid"], "description": "Run full SCIM sync for SCIM provider",
                "start_timestamp": last["mtime"], "finish_timestamp": last["mtime"], "duration": 0.0,
                "status": status, "messages": copy.deepcopy(last["logs"]), "expires": None, "expiring": True,
            })
        return ok({"is_running": running, "tasks": tasks})
    # The schedule's newest finished task (a full sync or one of its page tasks): the full sync
    # itself logs only "info", so its status says nothing about the objects.
    body = {"is_running": running}
    scheduled = state.schedule_tasks(pk)
    done = [t for t in scheduled if t["aggregated_status"] in ("done", "info")]
    if done:
        body["last_successful_sync"] = done[-1]["mtime"]
    if scheduled:
        body["last_sync_status"] = scheduled[-1]["aggregated_status"]
    return ok(body)


@router.route("POST", "/providers/scim/{id}/sync/object/")
def sync_object(request, id):  # noqa: A002
    state = request.context.state
    provider = _provider(state, id)
    body = body_object(request)
    errors = {}
    if "sync_object_model" not in body:
        errors["sync_object_model"] = ["This field is required."]
    else:
        _choice(body, "sync_object_model", (USER_MODEL, GROUP_MODEL), errors)
    _string(body, "sync_object_id", True, errors)
    _bool(body, "override_dry_run", errors)
    _raise(errors)
    model, object_id = body["sync_object_model"], str(body["sync_object_id"])
    if model == GROUP_MODEL:
        object_id = valid_uuid(object_id) or object_id
    pk, pusher, override = provider["pk"], request.context.pusher, bool(body.get("override_dry_run", False))
    def answer():
        messages = pusher.sync_object(pk, model, object_id, override)
        if messages is None:  # the worker did not finish it in time: Django's 500, the task runs later
            raise AkError(500, {"detail": "A server error occurred."})
        return ok({"messages": messages})

    return answer


# ---- providers/scim_groups and scim_users ---------------------------------------------------------


def _links_list(request, kind):
    state = request.context.state
    table = state.group_links if kind == "group" else state.user_links
    links = list(table.values())
    raw = request.arg("provider__id")
    if raw is not None:
        links = [link for link in links if str(link["provider"]) == raw]
    if kind == "group":
        gid = request.arg("group__group_uuid")
        if gid is not None:
            gid = valid_uuid(gid)
            links = [link for link in links if link["group"] == gid]
        name = request.arg("group__name")
        if name is not None:
            links = [link for link in links if link["group"] in state.groups and state.groups[link["group"]]["name"] == name]
    else:
        raw_user = request.arg("user__id")
        if raw_user is not None:
            links = [link for link in links if str(link["user"]) == raw_user]
        username = request.arg("user__username")
        if username is not None:
            links = [link for link in links if link["user"] in state.users and state.users[link["user"]]["username"] == username]
    search = request.arg("search")
    if search is not None:
        links = [link for link in links if search.casefold() in link["scim_id"].casefold()]
    return paginate(request, links, lambda link: state.render_link(kind, link), state)


def _link(state, kind, raw):
    table = state.group_links if kind == "group" else state.user_links
    lid = valid_uuid(raw)
    if lid is None or lid not in table:
        raise not_found(f"No SCIM Provider {kind.title()} matches the given query.")
    return table[lid]


def _create_link(request, kind):
    state = request.context.state
    body = body_object(request)
    errors = {}
    _string(body, "scim_id", True, errors)
    if kind not in body:
        errors[kind] = ["This field is required."]
    elif kind == "group" and valid_uuid(body["group"]) not in state.groups:
        errors["group"] = [f'Invalid pk "{body["group"]}" - object does not exist.']
    elif kind == "user" and (isinstance(body["user"], bool) or body["user"] not in state.users):
        errors["user"] = [f'Invalid pk "{body["user"]}" - object does not exist.']
    if "provider" not in body:
        errors["provider"] = ["This field is required."]
    elif isinstance(body["provider"], bool) or body["provider"] not in state.providers:
        errors["provider"] = [f'Invalid pk "{body["provider"]}" - object does not exist.']
    _raise(errors)
    obj = valid_uuid(body["group"]) if kind == "group" else body["user"]
    table = state.group_links if kind == "group" else state.user_links
    if any(link["scim_id"] == str(body["scim_id"]) and link[kind] == obj and link["provider"] == body["provider"] for link in table.values()):
        raise AkError(400, {"non_field_errors": [f"The fields scim_id, {kind}, provider must make a unique set."]})
    link = state.add_link(kind, body["provider"], obj, str(body["scim_id"]))
    return ok(state.render_link(kind, link), 201)


@router.route("GET", "/providers/scim_groups/")
def list_group_links(request):
    return _links_list(request, "group")


@router.route("POST", "/providers/scim_groups/")
def create_group_link(request):
    return _create_link(request, "group")


@router.route("GET", "/providers/scim_groups/{id}/")
def get_group_link(request, id):  # noqa: A002
    state = request.context.state
    return ok(state.render_link("group", _link(state, "group", id)))


@router.route("DELETE", "/providers/scim_groups/{id}/")
def delete_group_link(request, id):  # noqa: A002
    state = request.context.state
    del state.group_links[_link(state, "group", id)["id"]]  # the link only: the remote group stays
    return no_content()


@router.route("GET", "/providers/scim_users/")
def list_user_links(request):
    return _links_list(request, "user")


@router.route("POST", "/providers/scim_users/")
def create_user_link(request):
    return _create_link(request, "user")


@router.route("GET", "/providers/scim_users/{id}/")
def get_user_link(request, id):  # noqa: A002
    state = request.context.state
    return ok(state.render_link("user", _link(state, "user", id)))


@router.route("DELETE", "/providers/scim_users/{id}/")
def delete_user_link(request, id):  # noqa: A002
    state = request.context.state
    del state.user_links[_link(state, "user", id)["id"]]
    return no_content()


# ---- propertymappings (read-only: the managed defaults) --------------------------------------------


@router.route("GET", "/propertymappings/provider/scim/")
def list_mappings(request):
    state = request.context.state
    mappings = list(state.mappings.values())
    managed = values(request, "managed")
    if managed:
        mappings = [m for m in mappings if m["managed"] in managed]
    mappings = order(request, mappings, {"name": lambda m: m["name"]}, "name")
    return paginate(request, mappings, state.render_mapping, state)


@router.route("GET", "/propertymappings/provider/scim/{pm_uuid}/")
def get_mapping(request, pm_uuid):
    state = request.context.state
    pm = valid_uuid(pm_uuid)
    if pm not in state.mappings:
        raise not_found("No SCIM Provider Mapping matches the given query.")
    return ok(state.render_mapping(state.mappings[pm]))


# ---- tasks (2025.8+) ------------------------------------------------------------------------------


def _rel_filters(request, items, app_key, model_key):
    for param, key in (("rel_obj_content_type__app_label", app_key), ("rel_obj_content_type__model", model_key),
                       ("rel_obj_id", "rel_obj_id"), ("actor_name", "actor_name")):
        wanted = request.arg(param)
        if wanted is not None:
            items = [i for i in items if str(i[key]) == wanted]
    if request.arg("rel_obj_id__isnull") is not None:
        isnull = flag(request, "rel_obj_id__isnull", False)
        items = [i for i in items if (i["rel_obj_id"] is None) == isnull]
    return items


def _tasks_api(state):
    if not state.version.tasks_api:
        raise not_found("Not found.")


@router.route("GET", "/tasks/schedules/")
def list_schedules(request):
    state = request.context.state
    _tasks_api(state)
    items = _rel_filters(request, list(state.schedules.values()), "rel_obj_app_label", "rel_obj_model")
    if request.arg("paused") is not None:
        items = [s for s in items if s["paused"] == flag(request, "paused", False)]
    items = order(request, items, {"next_run": lambda s: s["next_run"], "actor_name": lambda s: s["actor_name"]}, "next_run")
    return paginate(request, items, state.render_schedule, state)


def _schedule(state, raw):
    _tasks_api(state)
    sid = valid_uuid(raw)
    if sid not in state.schedules:
        raise not_found("No Schedule matches the given query.")
    return state.schedules[sid]


@router.route("GET", "/tasks/schedules/{id}/")
def get_schedule(request, id):  # noqa: A002
    state = request.context.state
    return ok(state.render_schedule(_schedule(state, id)))


def _update_schedule(request, id, partial):  # noqa: A002
    state = request.context.state
    schedule = _schedule(state, id)
    body = body_object(request)
    errors = {}
    _string(body, "crontab", not partial, errors)
    _bool(body, "paused", errors)
    _raise(errors)
    for field in ("crontab", "paused"):
        if field in body:
            schedule[field] = body[field]
    return ok(state.render_schedule(schedule))


@router.route("PATCH", "/tasks/schedules/{id}/")
def patch_schedule(request, id):  # noqa: A002
    return _update_schedule(request, id, partial=True)


@router.route("PUT", "/tasks/schedules/{id}/")
def put_schedule(request, id):  # noqa: A002
    return _update_schedule(request, id, partial=False)


@router.route("POST", "/tasks/schedules/{id}/send/")
def send_schedule(request, id):  # noqa: A002
    state = request.context.state
    schedule = _schedule(state, id)
    pk, pusher = int(schedule["rel_obj_id"]), request.context.pusher
    schedule["next_run"] = now()
    request.jobs.append(lambda: pusher.full_sync(pk))
    return no_content()


_TASK_STATES = ("queued", "consumed", "preprocess", "running", "postprocess", "rejected", "done")
_AGGREGATED = _TASK_STATES + ("info", "warning", "error")


@router.route("GET", "/tasks/tasks/")
def list_tasks(request):
    state = request.context.state
    _tasks_api(state)
    items = _rel_filters(request, list(state.tasks), "rel_obj_app_label", "rel_obj_model")
    wanted = values(request, "aggregated_status")
    for status in wanted:
        if status not in _AGGREGATED:
            raise invalid("aggregated_status", f"Select a valid choice. {status} is not one of the available choices.")
    if wanted:
        items = [t for t in items if t["aggregated_status"] in wanted]
    for param in ("state", "queue_name", "actor_name"):
        if request.arg(param) is not None:
            items = [t for t in items if t[param] == request.arg(param)]
    positions = {id(t): i for i, t in enumerate(state.tasks)}
    # mtime ties (same microsecond) keep creation order.
    items = order(request, items, {"mtime": lambda t: (t["mtime"], positions[id(t)]), "actor_name": lambda t: t["actor_name"]}, "-mtime")
    return paginate(request, items, copy.deepcopy, state)


@router.route("GET", "/tasks/tasks/{message_id}/")
def get_task(request, message_id):
    state = request.context.state
    _tasks_api(state)
    tid = valid_uuid(message_id)
    task = next((t for t in state.tasks if t["message_id"] == tid), None)
    if task is None:
        raise not_found("No Task matches the given query.")
    return ok(copy.deepcopy(task))


@router.route("POST", "/tasks/tasks/{message_id}/retry/")
def retry_task(request, message_id):
    state = request.context.state
    _tasks_api(state)
    tid = valid_uuid(message_id)
    task = next((t for t in state.tasks if t["message_id"] == tid), None)
    if task is None:
        raise not_found("No Task matches the given query.")
    schedule = state.schedules.get(task["rel_obj_id"])
    if task["actor_name"] == FULL_SYNC_ACTOR and schedule is not None:
        pk, pusher = int(schedule["rel_obj_id"]), request.context.pusher
        request.jobs.append(lambda: pusher.full_sync(pk))
    return no_content()
