"""The Microsoft Graph v1.0 endpoints vgmigrate calls, as the sandbox answers them.

Handlers run under the state lock and return a Response; provisioning they cause is queued on
the worker and runs after the answer. The permission each route needs (any one of the set) is
the sandbox's own copy of Graph's permission pages (an oracle, apart from the client's table).
"""

import base64
import json
import re
from urllib.parse import quote, urlencode

from ..routing import Response, Router
from .state import DEFAULT_ACCESS_ROLE, stamp

router = Router()
MEMBERS_PER_BIND = 20  # members@odata.bind: "you can add up to only 20 members" per request
MEMBERS_PER_ON_DEMAND = 5  # provisionOnDemand: one group with up to five members

READ_GROUPS = {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
WRITE_GROUPS = {"Group.ReadWrite.All", "Directory.ReadWrite.All"}
CREATE_GROUPS = {"Group.Create"} | WRITE_GROUPS
WRITE_MEMBERS = {"GroupMember.ReadWrite.All"} | WRITE_GROUPS
READ_MEMBERS = {"GroupMember.Read.All"} | READ_GROUPS
READ_APPS = {"Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Directory.Read.All"}
READ_ASSIGNMENTS = READ_APPS | {"AppRoleAssignment.ReadWrite.All"}
WRITE_ASSIGNMENTS = {"AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.OwnedBy"}
READ_SYNC = {"Synchronization.Read.All", "Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy"}
WRITE_SYNC = {"Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy"}
READ_LOGS = {"AuditLog.Read.All"}


class GraphError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code, message, request_id="00000000-0000-0000-0000-000000000000"):
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": stamp(), "request-id": request_id, "client-request-id": request_id}}}


def needs(request, allowed):
    if not request.context.roles & allowed:
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _json(request):
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
    return body


# ---- OData query options -------------------------------------------------------------------------

_LITERAL = r"'((?:[^']|'')*)'"
_CLAUSES = [
    (re.compile(rf"^startswith\((\w+),\s*{_LITERAL}\)$", re.I), "startswith"),
    (re.compile(rf"^([\w/]+)\s+eq\s+{_LITERAL}$", re.I), "eq"),
]


def parse_filter(raw, allowed):
    """[(kind, property, value)] for `a eq 'x' and startswith(b,'y')`; 400 for anything else."""
    clauses = []
    for part in re.split(r"\s+and\s+", (raw or "").strip(), flags=re.I) if raw else []:
        for pattern, kind in _CLAUSES:
            found = pattern.match(part.strip())
            if found and found.group(1) in allowed:
                clauses.append((kind, found.group(1), found.group(2).replace("''", "'")))
                break
        else:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")
    return clauses


def _path_value(item, path):
    for key in path.split("/"):
        item = (item or {}).get(key)
    return item


def matches(item, clauses):
    """Directory string comparisons ignore case."""
    for kind, prop, value in clauses:
        have = str(_path_value(item, prop) or "").casefold()
        if (kind == "eq" and have != value.casefold()) or (kind == "startswith" and not have.startswith(value.casefold())):
            return False
    return True


def select(item, request, default=None):
    raw = request.arg("$select")
    fields = [f.strip() for f in raw.split(",")] if raw else default
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields or k in ("id", "@odata.type")}


def page(request, items, entity, render, top_max=999, top_default=100):
    """One page of `items` with `@odata.nextLink` (an opaque `$skiptoken`) while more remain."""
    raw = request.arg("$top")
    try:
        top = top_default if raw is None else int(raw)
    except ValueError:
        raise GraphError(400, "BadRequest", "Invalid value for $top.") from None
    if not 1 <= top <= top_max:
        raise GraphError(400, "Request_UnsupportedQuery", f"Invalid page size specified: '{top}'. Must be between 1 and {top_max} inclusive.")
    start = 0
    token = request.arg("$skiptoken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("X'").rstrip("'"), 16)
        except ValueError:
            raise GraphError(400, "Directory_InvalidSkipToken", "Invalid skip token.") from None
    items = list(items)
    chunk = [select(render(i), request) for i in items[start:start + top]]
    body = {"@odata.context": f"{request.context.graph_url}/$metadata#{entity}", "value": chunk}
    if start + top < len(items):
        query = {k: v[-1] for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = base64.urlsafe_b64encode(f"X'{start + top:x}'".encode()).decode().rstrip("=")
        body["@odata.nextLink"] = f"{request.context.graph_url}{request.path}?{urlencode(query, quote_via=quote, safe='$,()')}"
    return Response(200, body)


# ---- renderers ------------------------------------------------------------------------------------

def render_user(user):
    return {"@odata.type": "#microsoft.graph.user", **user}


def render_group(group):
    out = {k: v for k, v in group.items() if k != "members"}
    return {"@odata.type": "#microsoft.graph.group", **out}


def render_assignment(a):
    return dict(a)


def render_job(job):
    return {k: v for k, v in job.items() if not k.startswith("_")}


def _group(state, group_id):
    group = state.groups.get(group_id)
    if group is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist or one of its queried reference-property objects are not present.")
    return group


def _sp(state, sp_id):
    sp = state.service_principals.get(sp_id)
    if sp is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{sp_id}' does not exist or one of its queried reference-property objects are not present.")
    return sp


def _job(state, sp_id, job_id):
    _sp(state, sp_id)
    job = state.jobs.get(sp_id)
    if job is None or job["id"] != job_id:
        raise GraphError(404, "ResourceNotFound", "The requested resource was not found.")
    return job


def _bound_ids(state, values, group=None):
    if not isinstance(values, list) or len(values) > MEMBERS_PER_BIND:
        raise GraphError(400, "Request_BadRequest", f"The request contains more than {MEMBERS_PER_BIND} member references; send at most {MEMBERS_PER_BIND} per request.")
    ids = []
    for value in values:
        member = str(value).rstrip("/").rsplit("/", 1)[-1]
        if member not in state.users:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{member}' does not exist or one of its queried reference-property objects are not present.")
        if (group and member in group["members"]) or member in ids:
            raise GraphError(400, "Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.")
        ids.append(member)
    return ids


# ---- groups and users -----------------------------------------------------------------------------

@router.route("GET", "/groups")
def list_groups(request):
    needs(request, READ_GROUPS)
    state = request.context.state
    clauses = parse_filter(request.arg("$filter"), ("displayName", "id", "mailNickname"))
    found = [g for g in state.groups.values() if matches(g, clauses)]
    return page(request, found, "groups", render_group)


@router.route("POST", "/groups")
def create_group(request):
    needs(request, CREATE_GROUPS)
    state = request.context.state
    body = _json(request)
    for field in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
        if body.get(field) is None:
            raise GraphError(400, "Request_BadRequest", f"A value is required for property '{field}' of resource 'Group'.")
    if body["mailEnabled"] or not body["securityEnabled"]:
        raise GraphError(400, "Request_BadRequest", "Only security groups (mailEnabled false, securityEnabled true) can be created here.")
    if len(str(body.get("description") or "")) > 1024:
        raise GraphError(400, "Request_BadRequest", "The value of property 'description' exceeds 1024 characters.")
    members = _bound_ids(state, body.get("members@odata.bind") or [])
    group = state.add_group(body["displayName"], members, body.get("description"))
    group["mailNickname"] = body["mailNickname"]
    return Response(201, {"@odata.context": f"{request.context.graph_url}/$metadata#groups/$entity", **render_group(group)})


@router.route("GET", "/groups/{group_id}")
def get_group(request, group_id):
    needs(request, READ_GROUPS)
    return Response(200, select(render_group(_group(request.context.state, group_id)), request))


@router.route("PATCH", "/groups/{group_id}")
def update_group(request, group_id):
    needs(request, WRITE_MEMBERS)
    state = request.context.state
    group = _group(state, group_id)
    body = _json(request)
    unknown = set(body) - {"members@odata.bind", "description", "displayName"}
    if unknown:
        raise GraphError(400, "Request_BadRequest", f"Property '{sorted(unknown)[0]}' cannot be updated here.")
    if set(body) - {"members@odata.bind"}:
        needs(request, WRITE_GROUPS)
    members = _bound_ids(state, body.get("members@odata.bind") or [], group)
    group["members"].extend(members)
    for field in ("description", "displayName"):
        if field in body:
            group[field] = body[field]
    return Response(204)


@router.route("DELETE", "/groups/{group_id}")
def delete_group(request, group_id):
    needs(request, WRITE_GROUPS)
    state = request.context.state
    _group(state, group_id)
    del state.groups[group_id]
    for aid in [a["id"] for a in state.assignments.values() if a["principalId"] == group_id]:
        del state.assignments[aid]
    return Response(204)


@router.route("GET", "/groups/{group_id}/members")
def list_members(request, group_id):
    needs(request, READ_MEMBERS)
    state = request.context.state
    group = _group(state, group_id)
    return page(request, [state.users[u] for u in group["members"] if u in state.users], "directoryObjects", render_user)


@router.route("DELETE", r"/groups/{group_id}/members/{member_id}/\$ref")
def remove_member(request, group_id, member_id):
    needs(request, WRITE_MEMBERS)
    group = _group(request.context.state, group_id)
    if member_id not in group["members"]:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{member_id}' does not exist or one of its queried reference-property objects are not present.")
    group["members"].remove(member_id)
    return Response(204)


@router.route("GET", "/groups/{group_id}/appRoleAssignments")
def group_assignments(request, group_id):
    needs(request, READ_ASSIGNMENTS | READ_GROUPS)
    state = request.context.state
    _group(state, group_id)
    return page(request, [a for a in state.assignments.values() if a["principalId"] == group_id], "appRoleAssignments", render_assignment)


# ---- the enterprise application -------------------------------------------------------------------

@router.route("GET", "/servicePrincipals")
def list_service_principals(request):
    needs(request, READ_APPS)
    state = request.context.state
    clauses = parse_filter(request.arg("$filter"), ("displayName", "appId", "id"))
    return page(request, [s for s in state.service_principals.values() if matches(s, clauses)], "servicePrincipals", dict)


@router.route("GET", "/servicePrincipals/{sp_id}")
def get_service_principal(request, sp_id):
    needs(request, READ_APPS)
    return Response(200, select(dict(_sp(request.context.state, sp_id)), request))


@router.route("GET", "/servicePrincipals/{sp_id}/appRoleAssignedTo")
def list_assigned(request, sp_id):
    needs(request, READ_ASSIGNMENTS)
    state = request.context.state
    _sp(state, sp_id)
    return page(request, [a for a in state.assignments.values() if a["resourceId"] == sp_id], "appRoleAssignments", render_assignment)


@router.route("POST", "/servicePrincipals/{sp_id}/appRoleAssignedTo")
def assign(request, sp_id):
    needs(request, WRITE_ASSIGNMENTS)
    state = request.context.state
    sp = _sp(state, sp_id)
    body = _json(request)
    if body.get("resourceId") != sp_id:
        raise GraphError(400, "Request_BadRequest", "resourceId must be the service principal in the URL.")
    group = state.groups.get(str(body.get("principalId")))
    if group is None:
        raise GraphError(400, "Request_BadRequest", "Invalid principalId: no group with this id.")
    role = body.get("appRoleId")
    if role != DEFAULT_ACCESS_ROLE and role not in {r["id"] for r in sp["appRoles"]}:
        raise GraphError(400, "Request_BadRequest", "Permission being assigned was not found on application")
    if any(a["principalId"] == group["id"] and a["resourceId"] == sp_id and a["appRoleId"] == role for a in state.assignments.values()):
        raise GraphError(400, "Request_BadRequest", "Permission being assigned already exists on the object")
    assignment = state.assign(sp, group, role)
    return Response(201, {"@odata.context": f"{request.context.graph_url}/$metadata#appRoleAssignments/$entity", **assignment})


@router.route("DELETE", "/servicePrincipals/{sp_id}/appRoleAssignedTo/{assignment_id}")
def unassign(request, sp_id, assignment_id):
    needs(request, WRITE_ASSIGNMENTS)
    state = request.context.state
    _sp(state, sp_id)
    assignment = state.assignments.get(assignment_id)
    if assignment is None or assignment["resourceId"] != sp_id:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{assignment_id}' does not exist or one of its queried reference-property objects are not present.")
    del state.assignments[assignment_id]
    return Response(204)


@router.route("GET", "/servicePrincipals/{sp_id}/synchronization/jobs")
def list_jobs(request, sp_id):
    needs(request, READ_SYNC)
    state = request.context.state
    _sp(state, sp_id)
    job = state.jobs.get(sp_id)
    return Response(200, {"@odata.context": f"{request.context.graph_url}/$metadata#synchronizationJobs",
                          "value": [render_job(job)] if job else []})


@router.route("GET", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}")
def get_job(request, sp_id, job_id):
    needs(request, READ_SYNC)
    return Response(200, render_job(_job(request.context.state, sp_id, job_id)))


@router.route("GET", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/schema")
def get_schema(request, sp_id, job_id):
    needs(request, READ_SYNC)
    job = _job(request.context.state, sp_id, job_id)
    return Response(200, {"id": job["id"], "version": "Date:2026-01-01",
                          "synchronizationRules": [{"id": job["_rule"], "name": "USER_GROUP_OUTBOUND", "editable": True,
                                                    "priority": 1, "sourceDirectoryName": "Azure Active Directory",
                                                    "targetDirectoryName": "customappsso", "containerFilter": {"includedContainers": []},
                                                    "groupFilter": {"includedGroups": []}, "metadata": [], "objectMappings": []}]})


@router.route("POST", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/provisionOnDemand")
def provision_on_demand(request, sp_id, job_id):
    needs(request, WRITE_SYNC)
    state = request.context.state
    job = _job(state, sp_id, job_id)
    body = _json(request)
    parameters = body.get("parameters")
    if not isinstance(parameters, list) or len(parameters) != 1:
        raise GraphError(400, "BadRequest", "parameters must hold one synchronizationJobApplicationParameters.")
    parameter = parameters[0] or {}
    if parameter.get("ruleId") != job["_rule"]:
        raise GraphError(400, "BadRequest", "ruleId is not a synchronization rule of this job's schema.")
    subjects = parameter.get("subjects") or []
    if len(subjects) != 1 or str(subjects[0].get("objectTypeName")).lower() != "group":
        raise GraphError(400, "BadRequest", "On-demand provisioning takes one group at a time.")
    subject = subjects[0]
    members = [m.get("objectId") for m in ((subject.get("links") or {}).get("members") or [])]
    if len(members) > MEMBERS_PER_ON_DEMAND:
        raise GraphError(400, "BadRequest", f"On-demand provisioning of a group takes at most {MEMBERS_PER_ON_DEMAND} members.")
    group = _group(state, str(subject.get("objectId")))
    if group["id"] not in state.assigned_groups(sp_id):
        # "No user or group will be provisioned on-demand that would not have been provisioned
        # through the regular provisioning cycles."
        raise GraphError(400, "BadRequest", f"Group '{group['displayName']}' is not in scope: it is not assigned to the application.")
    request.jobs.append(lambda: request.context.provisioner.on_demand(sp_id, group["id"], members))
    value = json.dumps({"provisioningSteps": [{"name": "EntryImport", "status": "Success"}],
                        "sourceIdentity": {"id": group["id"], "displayName": group["displayName"], "identityType": "Group"}})
    return Response(200, {"@odata.context": f"{request.context.graph_url}/$metadata#microsoft.graph.stringKeyStringValuePair",
                          "key": "Microsoft.Identity.Health.CPP.Common.DataContracts.SyncFabric.StatusInfo", "value": value})


@router.route("GET", "/auditLogs/provisioning")
def provisioning_logs(request):
    needs(request, READ_LOGS)
    state = request.context.state
    clauses = parse_filter(request.arg("$filter"), ("servicePrincipal/id", "sourceIdentity/id", "jobId"))
    found = [e for e in reversed(state.logs) if matches(e, clauses)]  # newest first
    return page(request, found, "auditLogs/provisioning", dict, top_max=1000, top_default=50)
