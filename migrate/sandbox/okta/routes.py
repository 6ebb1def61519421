"""The Okta Management API endpoints the emulator serves (paths under /api/v1), with the OAuth
scopes each one needs (its `security` in Okta's OpenAPI: every listed scope)."""

import json
import re
from urllib.parse import urlencode

from ..routing import Response, Router
from .state import (
    MAPPING_CHANGED, render_app, render_app_user, render_assignment, render_connection, render_features,
    render_group, render_log, render_mapping, render_user, now,
)

router = Router()
SCOPES = {}  # handler -> the OAuth scopes it needs


class OktaApiError(Exception):
    def __init__(self, status, code, summary, causes=()):
        super().__init__(summary)
        self.status, self.code, self.summary, self.causes = status, code, summary, list(causes)

    def body(self, error_id):
        return {"errorCode": self.code, "errorSummary": self.summary, "errorLink": self.code, "errorId": error_id,
                "errorCauses": [{"errorSummary": c} for c in self.causes]}


def not_found(what="Resource"):
    return OktaApiError(404, "E0000007", f"Not found: {what}")


def invalid(cause):
    return OktaApiError(400, "E0000001", "Api validation failed: " + cause.split(":")[0], [cause])


def route(method, pattern, *scopes):
    def register(handler):
        SCOPES[handler] = scopes
        return router.route(method, "/api/v1" + pattern)(handler)
    return register


# ---- helpers -----------------------------------------------------------------------------------------


def _json(request):
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else {}
    except (UnicodeDecodeError, ValueError):
        raise OktaApiError(400, "E0000003", "The request body was not well-formed.") from None
    if not isinstance(body, dict):
        raise OktaApiError(400, "E0000003", "The request body was not well-formed.")
    return body


def _limit(request, default, maximum):
    raw = request.arg("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid("limit: must be a number") from None
    return max(1, min(value, maximum))  # Okta clamps `limit` rather than refusing it


def _page(request, items, key, render, default, maximum):
    """A page after the `after` cursor (the key of the last item of the previous page) and the
    `Link` headers: rel="self", and rel="next" while there are more."""
    limit = _limit(request, default, maximum)
    after = request.arg("after")
    start = 0
    if after is not None:
        keys = [key(i) for i in items]
        start = keys.index(after) + 1 if after in keys else len(items)
    chunk = items[start:start + limit]
    org = request.context.state.org_url
    path = request.context.full_path
    query = {k: v[-1] for k, v in request.query.items() if k != "after"}
    links = [f'<{org}{path}{"?" + urlencode(query) if query else ""}>; rel="self"']
    if start + limit < len(items) and chunk:
        links.append(f'<{org}{path}?{urlencode(dict(query, after=key(chunk[-1]), limit=limit))}>; rel="next"')
    return Response(200, [render(i) for i in chunk], headers={"Link": ", ".join(links)})


_CLAUSE = re.compile(r'^\s*([\w.]+)\s+(eq|sw)\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def _expression(raw, fields):
    """Okta's filter/search expressions, as far as the emulator needs: clauses `field eq "v"` or
    `field sw "v"` joined by `and` (case-insensitive values). Anything else is a 400."""
    clauses = []
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if not found or found.group(1) not in fields:
            raise invalid(f"search: Invalid search criteria {raw!r}")
        clauses.append((fields[found.group(1)], found.group(2).lower(), found.group(3).replace('\\"', '"').casefold()))

    def matches(item):
        for getter, op, value in clauses:
            actual = str(getter(item) or "").casefold()
            if (op == "eq" and actual != value) or (op == "sw" and not actual.startswith(value)):
                return False
        return True

    return matches


def _group(state, group_id):
    group = state.groups.get(group_id)
    if group is None:
        raise not_found(f"{group_id} (UserGroup)")
    return group


def _user(state, user_id):
    user = state.users.get(user_id)
    if user is None:
        raise not_found(f"{user_id} (User)")
    return user


def _app(state, app_id):
    app = state.apps.get(app_id)
    if app is None:
        raise not_found(f"{app_id} (AppInstance)")
    return app


_GROUP_FIELDS = {"profile.name": lambda g: g["profile"]["name"], "type": lambda g: g["type"], "id": lambda g: g["id"],
                 "source.id": lambda g: g.get("source")}


# ---- groups ------------------------------------------------------------------------------------------


@route("GET", "/groups", "okta.groups.read")
def list_groups(request):
    state = request.context.state
    items = list(state.groups.values())
    q, search, filter_ = request.arg("q"), request.arg("search"), request.arg("filter")
    if q is not None:
        items = [g for g in items if g["profile"]["name"].casefold().startswith(q.casefold()) and g["type"] == "OKTA_GROUP"]
    for raw in (search, filter_):
        if raw is not None:
            matches = _expression(raw, _GROUP_FIELDS)
            items = [g for g in items if matches(g)]
    return _page(request, items, lambda g: g["id"], lambda g: render_group(state, g), 10000, 10000)


@route("POST", "/groups", "okta.groups.manage")
def create_group(request):
    state = request.context.state
    body = _json(request)
    profile = body.get("profile")
    if not isinstance(profile, dict) or not isinstance(profile.get("name"), str) or not profile["name"].strip():
        raise invalid("name: The field cannot be left blank")
    if state.group_named(profile["name"]) is not None:
        raise invalid("name: An object with this field already exists in the current organization")
    description = profile.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("description: must be a string")
    group = state.add_group(profile["name"], description)
    return Response(200, render_group(state, group))


@route("GET", "/groups/{group_id}", "okta.groups.read")
def get_group(request, group_id):
    state = request.context.state
    return Response(200, render_group(state, _group(state, group_id)))


@route("DELETE", "/groups/{group_id}", "okta.groups.manage")
def delete_group(request, group_id):
    """The group's app assignments and push mappings go with it; its users lose what it assigned
    them (and are deactivated in Cloudflare if nothing else assigns them). The pushed group stays in
    Cloudflare: to delete it, delete the mapping first with deleteTargetGroup=true."""
    state = request.context.state
    group = _group(state, group_id)
    if group["type"] == "APP_GROUP":
        raise OktaApiError(403, "E0000006", "You do not have permission to perform the requested action",
                           ["An app group can only be deleted through its app"])
    members = list(group["members"])
    del state.groups[group_id]
    for app in state.apps.values():
        app["assignments"].pop(group_id, None)
        for mapping_id in [m["id"] for m in app["mappings"].values() if m["sourceGroupId"] == group_id]:
            del app["mappings"][mapping_id]
    request.jobs.extend(lambda u=u: request.context.pusher.after_membership_change(group_id, u) for u in members)
    return Response(204)


@route("GET", "/groups/{group_id}/users", "okta.groups.read")
def list_group_users(request, group_id):
    state = request.context.state
    group = _group(state, group_id)
    users = [state.users[u] for u in group["members"] if u in state.users]
    return _page(request, users, lambda u: u["id"], lambda u: render_user(state, u), 1000, 10000)


@route("PUT", "/groups/{group_id}/users/{user_id}", "okta.groups.manage")
def add_group_user(request, group_id, user_id):
    state = request.context.state
    group, user = _group(state, group_id), _user(state, user_id)
    if group["type"] != "OKTA_GROUP":
        raise OktaApiError(403, "E0000006", "You do not have permission to perform the requested action",
                           ["Memberships of app groups are managed by their app"])
    if user["id"] not in group["members"]:
        group["members"][user["id"]] = None
        group["lastMembershipUpdated"] = now()
        request.jobs.append(lambda: request.context.pusher.after_membership_change(group_id, user_id))
    return Response(204)


@route("DELETE", "/groups/{group_id}/users/{user_id}", "okta.groups.manage")
def remove_group_user(request, group_id, user_id):
    state = request.context.state
    group, user = _group(state, group_id), _user(state, user_id)
    if user["id"] in group["members"]:
        del group["members"][user["id"]]
        group["lastMembershipUpdated"] = now()
        request.jobs.append(lambda: request.context.pusher.after_membership_change(group_id, user_id))
    return Response(204)


# ---- apps --------------------------------------------------------------------------------------------


_APP_FIELDS = {"status": lambda a: a["status"], "name": lambda a: a["name"]}


@route("GET", "/apps", "okta.apps.read")
def list_apps(request):
    state = request.context.state
    items = list(state.apps.values())
    if request.arg("q") is not None:
        q = request.arg("q").casefold()
        items = [a for a in items if a["label"].casefold().startswith(q) or a["name"].casefold().startswith(q)]
    if request.arg("filter") is not None:
        matches = _expression(request.arg("filter"), _APP_FIELDS)
        items = [a for a in items if matches(a)]
    return _page(request, items, lambda a: a["id"], lambda a: render_app(state, a), 20, 200)


@route("GET", "/apps/{app_id}", "okta.apps.read")
def get_app(request, app_id):
    state = request.context.state
    return Response(200, render_app(state, _app(state, app_id)))


@route("GET", "/apps/{app_id}/connections/default", "okta.apps.read")
def get_connection(request, app_id):
    state = request.context.state
    return Response(200, render_connection(state, _app(state, app_id)))


@route("GET", "/apps/{app_id}/features", "okta.apps.read")
def list_features(request, app_id):
    state = request.context.state
    app = _app(state, app_id)
    if app["connection"]["status"] != "ENABLED":
        raise OktaApiError(400, "E0000155", "Provisioning is not enabled for this app")
    return Response(200, render_features(state, app))


@route("GET", "/apps/{app_id}/groups", "okta.apps.read")
def list_app_groups(request, app_id):
    state = request.context.state
    app = _app(state, app_id)
    ids = list(app["assignments"])
    return _page(request, ids, lambda g: g, lambda g: render_assignment(state, app, g), 20, 200)


@route("GET", "/apps/{app_id}/groups/{group_id}", "okta.apps.read")
def get_app_group(request, app_id, group_id):
    state = request.context.state
    app = _app(state, app_id)
    if group_id not in app["assignments"]:
        raise not_found(f"{group_id} (AppGroupAssignment)")
    return Response(200, render_assignment(state, app, group_id))


@route("PUT", "/apps/{app_id}/groups/{group_id}", "okta.apps.manage")
def assign_app_group(request, app_id, group_id):
    state = request.context.state
    app, group = _app(state, app_id), _group(state, group_id)
    body = _json(request)
    priority = body.get("priority", len(app["assignments"]))
    if not isinstance(priority, int) or priority < 0:
        raise invalid("priority: must be a non-negative integer")
    fresh = group_id not in app["assignments"]
    app["assignments"][group_id] = {"priority": priority, "lastUpdated": now()}
    if fresh:
        request.jobs.extend(lambda u=u: request.context.pusher.provision(app_id, u) for u in list(group["members"]))
    return Response(200, render_assignment(state, app, group_id))


@route("DELETE", "/apps/{app_id}/groups/{group_id}", "okta.apps.manage")
def unassign_app_group(request, app_id, group_id):
    state = request.context.state
    app = _app(state, app_id)
    if app["assignments"].pop(group_id, None) is None:
        raise not_found(f"{group_id} (AppGroupAssignment)")
    group = state.groups.get(group_id)
    request.jobs.extend(lambda u=u: request.context.pusher.provision(app_id, u) for u in list(group["members"] if group else ()))
    return Response(204)


@route("GET", "/apps/{app_id}/users", "okta.apps.read")
def list_app_users(request, app_id):
    state = request.context.state
    app = _app(state, app_id)
    expand = request.arg("expand") == "user"
    records = list(app["app_users"].values())
    return _page(request, records, lambda r: r["id"], lambda r: render_app_user(state, app, r, expand), 50, 500)


# ---- group push mappings -----------------------------------------------------------------------------


@route("GET", "/apps/{app_id}/group-push/mappings", "okta.apps.read", "okta.groups.read")
def list_mappings(request, app_id):
    state = request.context.state
    app = _app(state, app_id)
    items = list(app["mappings"].values())
    if request.arg("sourceGroupId") is not None:
        items = [m for m in items if m["sourceGroupId"] == request.arg("sourceGroupId")]
    if request.arg("status") is not None:
        if request.arg("status") not in ("ACTIVE", "INACTIVE", "ERROR"):
            raise invalid("status: must be ACTIVE, INACTIVE or ERROR")
        items = [m for m in items if m["status"] == request.arg("status")]
    return _page(request, items, lambda m: m["id"], lambda m: render_mapping(state, app, m), 100, 1000)


@route("POST", "/apps/{app_id}/group-push/mappings", "okta.apps.manage", "okta.groups.manage")
def create_mapping(request, app_id):
    state = request.context.state
    app = _app(state, app_id)
    body = _json(request)
    if "GROUP_PUSH" not in app["features"]:
        raise OktaApiError(400, "E0000001", "Api validation failed: Group Push is not enabled for this app",
                           ["Group Push is not enabled for this app"])
    source = body.get("sourceGroupId")
    if not isinstance(source, str):
        raise invalid("sourceGroupId: The field cannot be left blank")
    group = state.groups.get(source)
    if group is None or group["type"] != "OKTA_GROUP":
        raise invalid(f"sourceGroupId: Group {source} not found")
    name, target = body.get("targetGroupName"), body.get("targetGroupId")
    if (name is None) == (target is None):
        raise invalid("targetGroupId: Either targetGroupId or targetGroupName must be provided, but not both")
    status = body.get("status", "ACTIVE")
    if status not in ("ACTIVE", "INACTIVE"):
        raise invalid("status: must be ACTIVE or INACTIVE")
    if state.mapping_for(app, source) is not None:
        raise invalid(f"sourceGroupId: Group {source} is already pushed to this app")
    mapping = {"id": state.new_id("gPm"), "created": now(), "lastUpdated": now(), "sourceGroupId": source, "status": status,
               "targetGroupId": None, "scim_id": None, "lastPush": None, "errorSummary": None}
    if target is not None:
        # Linking needs the target imported into Okta as an app group of this app.
        linked = state.groups.get(target)
        if linked is None or linked["type"] != "APP_GROUP" or linked.get("source") != app_id or not linked.get("scim_id"):
            raise invalid(f"targetGroupId: Group {target} not found in app {app['label']}")
        mapping.update(targetGroupId=target, scim_id=linked["scim_id"])
    elif not isinstance(name, str) or not name.strip():
        raise invalid("targetGroupName: The field cannot be left blank")
    app["mappings"][mapping["id"]] = mapping
    if status == "ACTIVE":
        request.jobs.append(lambda: request.context.pusher.push_group(app_id, mapping["id"]))
    return Response(201, render_mapping(state, app, mapping))


def _mapping(state, app, mapping_id):
    mapping = app["mappings"].get(mapping_id)
    if mapping is None:
        raise not_found(f"{mapping_id} (GroupPushMapping)")
    return mapping


@route("GET", "/apps/{app_id}/group-push/mappings/{mapping_id}", "okta.apps.read", "okta.groups.read")
def get_mapping(request, app_id, mapping_id):
    state = request.context.state
    app = _app(state, app_id)
    return Response(200, render_mapping(state, app, _mapping(state, app, mapping_id)))


@route("PATCH", "/apps/{app_id}/group-push/mappings/{mapping_id}", "okta.apps.manage", "okta.groups.manage")
def update_mapping(request, app_id, mapping_id):
    """ACTIVE pushes the group again (its initial push, then its membership); INACTIVE stops it."""
    state = request.context.state
    app = _app(state, app_id)
    mapping = _mapping(state, app, mapping_id)
    status = _json(request).get("status")
    if status not in ("ACTIVE", "INACTIVE"):
        raise invalid("status: must be ACTIVE or INACTIVE")
    if status != mapping["status"]:
        mapping.update(status=status, lastUpdated=now())
        if status == "ACTIVE":
            mapping["errorSummary"] = None
            request.jobs.append(lambda: request.context.pusher.push_group(app_id, mapping_id))
        group = state.groups.get(mapping["sourceGroupId"])
        name = group["profile"]["name"] if group else mapping["sourceGroupId"]
        state.log(MAPPING_CHANGED, f"Group push mapping of {name} set to {status}",
                  [{"id": app_id, "type": "AppInstance", "alternateId": app["label"], "displayName": app["label"]},
                   {"id": mapping_id, "type": "GroupPushMapping", "alternateId": mapping_id, "displayName": name}])
    return Response(200, render_mapping(state, app, mapping))


@route("DELETE", "/apps/{app_id}/group-push/mappings/{mapping_id}", "okta.apps.manage", "okta.groups.manage")
def delete_mapping(request, app_id, mapping_id):
    state = request.context.state
    app = _app(state, app_id)
    mapping = _mapping(state, app, mapping_id)
    raw = request.arg("deleteTargetGroup")
    if raw not in ("true", "false"):
        raise invalid("deleteTargetGroup: The field is required and must be true or false")
    if mapping["status"] == "ACTIVE":
        raise invalid("status: The group push mapping must be INACTIVE before it can be deleted")
    del app["mappings"][mapping_id]
    target = state.groups.get(mapping["targetGroupId"]) if mapping.get("targetGroupId") else None
    if raw == "true" and target is not None:
        del state.groups[target["id"]]  # else it stays, as an imported app group a new mapping may link to
    if raw == "true" and mapping.get("scim_id"):
        group = state.groups.get(mapping["sourceGroupId"])
        label = group["profile"]["name"] if group else (target or {}).get("profile", {}).get("name", mapping["sourceGroupId"])
        scim_id = mapping["scim_id"]
        request.jobs.append(lambda: request.context.pusher.delete_target(app_id, scim_id, label, mapping["sourceGroupId"]))
    return Response(204)


# ---- the System Log ----------------------------------------------------------------------------------


_LOG_FIELDS = {"eventType": lambda e: e["eventType"], "outcome.result": lambda e: e["outcome"]["result"],
               "target.id": None}


@route("GET", "/logs", "okta.logs.read")
def list_logs(request):
    state = request.context.state
    events = list(state.logs)
    since, until = request.arg("since"), request.arg("until")
    if since:
        events = [e for e in events if e["published"] >= since]
    if until:
        events = [e for e in events if e["published"] < until]
    raw = request.arg("filter")
    if raw is not None:
        events = [e for e in events if _log_matches(raw, e)]
    if request.arg("sortOrder") == "DESCENDING":
        events.reverse()
    return _page(request, events, lambda e: str(e["n"]), render_log, 100, 1000)


def _log_matches(raw, event):
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if not found or found.group(1) not in _LOG_FIELDS or found.group(2).lower() != "eq":
            raise invalid(f"filter: Invalid filter expression {raw!r}")
        field, value = found.group(1), found.group(3)
        if field == "target.id":
            if not any(t["id"] == value for t in event["target"]):
                return False
        elif _LOG_FIELDS[field](event) != value:
            return False
    return True


@route("GET", "/users/{user_id}", "okta.users.read")
def get_user(request, user_id):
    state = request.context.state
    if user_id == "me":
        user = state.admin
        if user is None:
            raise not_found("me (User)")
    else:
        user = _user(state, user_id)
    return Response(200, render_user(state, user))
