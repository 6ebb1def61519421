"""Contract: every answer the Entra emulator gives while EntraClient does everything vgmigrate
does (and fails the ways Graph fails) is valid against Microsoft Graph v1.0's own metadata: the
CSDL the v1.0 OpenAPI is generated from (tests/schemas/entra/, provenance in tests/schemas/README.md).

Valid means: every property an object carries is declared on its type (or a base type), with a
value of the declared type (strings, booleans, numbers, GUIDs, dates, enum members, collections,
complex types, recursively); a derived type is named by `@odata.type`; error bodies have Graph's
`{"error": {"code", "message"}}` (the OpenAPI's ODataErrors.MainError, which the CSDL lacks)."""

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from schema_files import SCHEMAS

from migrate.cloudflare import CloudflareClient
from migrate.errors import EntraError, VgmigrateError
from migrate.idp.entra import connect_from_env
from migrate.sandbox.entra import FULL_ROLES, EntraSandbox
from migrate.sandbox.entra.routes import router

CSDL = SCHEMAS / "entra" / "graph-v1.0-subset.csdl.xml"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ROOT = ET.parse(CSDL).getroot()
TYPES = {el.get("Name"): el for el in ROOT.iter() if el.tag in (f"{EDM}EntityType", f"{EDM}ComplexType", f"{EDM}EnumType")}

# What each route answers (a type name; "[]" a collection of it; None: no body).
ANSWERS = {
    ("GET", "/groups"): "group[]", ("POST", "/groups"): "group", ("GET", "/groups/{group_id}"): "group",
    ("PATCH", "/groups/{group_id}"): None, ("DELETE", "/groups/{group_id}"): None,
    ("GET", "/groups/{group_id}/members"): "directoryObject[]", ("DELETE", r"/groups/{group_id}/members/{member_id}/\$ref"): None,
    ("GET", "/groups/{group_id}/appRoleAssignments"): "appRoleAssignment[]",
    ("GET", "/servicePrincipals"): "servicePrincipal[]", ("GET", "/servicePrincipals/{sp_id}"): "servicePrincipal",
    ("GET", "/servicePrincipals/{sp_id}/appRoleAssignedTo"): "appRoleAssignment[]",
    ("POST", "/servicePrincipals/{sp_id}/appRoleAssignedTo"): "appRoleAssignment",
    ("DELETE", "/servicePrincipals/{sp_id}/appRoleAssignedTo/{assignment_id}"): None,
    ("GET", "/servicePrincipals/{sp_id}/synchronization/jobs"): "synchronizationJob[]",
    ("GET", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}"): "synchronizationJob",
    ("GET", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/schema"): "synchronizationSchema",
    ("POST", "/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/provisionOnDemand"): "stringKeyStringValuePair",
    ("GET", "/auditLogs/provisioning"): "provisioningObjectSummary[]",
}


def properties(type_name):
    """{name: Edm type} of a type and its base types."""
    found = {}
    while type_name:
        element = TYPES[type_name]
        for prop in element.findall(f"{EDM}Property"):
            found.setdefault(prop.get("Name"), (prop.get("Type"), prop.get("Nullable") != "false"))
        base = element.get("BaseType")
        type_name = base.split(".", 1)[1] if base else None
    return found


def derived(type_name, odata_type):
    """The type `@odata.type` names, if it is `type_name` or derives from it."""
    name = odata_type.removeprefix("#microsoft.graph.")
    walk = name
    while walk:
        if walk == type_name:
            return name
        base = TYPES[walk].get("BaseType") if walk in TYPES else None
        walk = base.split(".", 1)[1] if base else None
    raise AssertionError(f"@odata.type {odata_type} is not a {type_name}")


def check_value(edm, value, where, problems):
    if edm.startswith("Collection("):
        if not isinstance(value, list):
            return problems.append(f"{where}: expected a collection")
        for n, item in enumerate(value):
            check_value(edm[len("Collection("):-1], item, f"{where}[{n}]", problems)
        return
    if value is None:
        return
    simple = {"Edm.String": str, "Edm.Boolean": bool, "Edm.Int32": int, "Edm.Int64": int, "Edm.Double": (int, float)}
    if edm in simple:
        if not isinstance(value, simple[edm]) or (edm != "Edm.Boolean" and isinstance(value, bool)):
            problems.append(f"{where}: {value!r} is not {edm}")
    elif edm == "Edm.Guid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            problems.append(f"{where}: {value!r} is not a GUID")
    elif edm == "Edm.Duration":
        if not re.fullmatch(r"-?P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?", str(value)):
            problems.append(f"{where}: {value!r} is not an ISO 8601 duration")
    elif edm == "Edm.DateTimeOffset":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{where}: {value!r} is not a date-time")
    elif edm.startswith("graph."):
        check_object(edm[len("graph."):], value, where, problems)
    else:
        problems.append(f"{where}: no check for {edm}")


def check_object(type_name, value, where, problems):
    if type_name not in TYPES:
        return problems.append(f"{where}: type {type_name} is not in the subset")
    element = TYPES[type_name]
    if element.tag == f"{EDM}EnumType":
        members = {m.get("Name") for m in element.findall(f"{EDM}Member")}
        if value not in members:
            problems.append(f"{where}: {value!r} is not a {type_name} ({sorted(members)})")
        return
    if not isinstance(value, dict):
        return problems.append(f"{where}: expected a {type_name} object")
    if "@odata.type" in value:
        type_name = derived(type_name, value["@odata.type"])
    declared = properties(type_name)
    for key, item in value.items():
        if key.startswith("@odata.") or "@odata." in key:
            continue
        if key not in declared:
            problems.append(f"{where}.{key}: not a property of {type_name}")
            continue
        edm, nullable = declared[key]
        if item is None and not nullable:
            problems.append(f"{where}.{key}: null, but not nullable")
        check_value(edm, item, f"{where}.{key}", problems)


def problems_of(method, path, status, body):
    found = router.match(method, path.removeprefix("/v1.0"))
    if path.endswith("/oauth2/v2.0/token"):
        ok = status == 200 and {"token_type", "expires_in", "access_token"} <= set(body) or \
            status >= 400 and isinstance(body.get("error"), str) and str(body.get("error_description", "")).startswith("AADSTS")
        return [] if ok else [f"token answer {status}: {body}"]
    if status >= 400:
        error = (body or {}).get("error") or {}
        ok = isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
        return [] if ok else [f"{method} {path} {status}: not Graph's error shape"]
    assert found, f"{method} {path} does not route"
    answer = ANSWERS[(method, found[0].pattern.pattern[1:-1].replace("(?P<", "{").replace(">[^/]+)", "}"))]
    if answer is None:
        return [] if body is None else [f"{method} {path}: a body where Graph sends none"]
    problems = []
    if answer.endswith("[]"):
        assert isinstance(body.get("value"), list), f"{method} {path}: no value collection"
        for n, item in enumerate(body["value"]):
            check_object(answer[:-2], item, f"{path}.value[{n}]", problems)
        extra = set(body) - {"value", "@odata.context", "@odata.nextLink", "@odata.count"}
        problems += [f"{path}: {k} is not part of a collection answer" for k in extra]
    else:
        check_object(answer, body, path, problems)
    return problems


def _route_key(route):
    return route.method, route.pattern.pattern[1:-1].replace("(?P<", "{").replace(">[^/]+)", "}")


def test_every_route_has_a_declared_answer():
    assert {_route_key(r) for r in router.routes} == set(ANSWERS)


def test_every_answer_of_a_whole_run_is_valid_against_graph_s_metadata(sandbox, monkeypatch):
    from migrate.idp import entra as entra_module

    monkeypatch.setattr(entra_module, "PAGE_SIZE", 3)  # several pages of everything
    with EntraSandbox(cloudflare=sandbox) as emulator:
        emulator.record_bodies = True
        env = emulator.environment()
        graph = connect_from_env(env)
        cf = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
        sp = emulator.service_principal_id
        facts = graph.plan_facts(cf)
        groups = graph.cf_groups()
        with emulator.state.lock:
            extra = [emulator.state.add_user(f"c{i}@example.com", f"C {i}")["id"] for i in range(21)]
        made = graph.create_group("Contract Readers", groups[0]["users"] + extra, {"vgmigrate": {"plan": "x"}})
        assert graph.group(made["pk"])["attributes"] == {"vgmigrate": {"plan": "x"}}
        graph.set_members(made["pk"], groups[0]["users"])
        graph.set_scope(sp, graph.scope_of(sp) + [made["pk"]])
        graph.push(sp, made["pk"])
        emulator.settle()
        emulator.run_cycle()
        graph.group_pushes(sp, made["pk"])
        graph.named_application("Cloudflare")
        graph.named_application(sp)
        graph._call("GET", f"/servicePrincipals/{sp}/synchronization/jobs/{facts['provider']['job']}")
        graph.set_scope(sp, [g for g in graph.scope_of(sp) if g != made["pk"]])
        graph.delete_group(made["pk"])
        # the failures: unknown group, a bad filter, too many references, throttling, a wrong secret, a missing permission
        graph.group("00000000-0000-0000-0000-000000000000")
        with pytest.raises(EntraError):
            graph._call("GET", "/groups", {"$filter": "endswith(displayName,'x')"})
        emulator.inject("GET", r"/groups$", "429")
        graph.cf_groups(include_users=False)
        with pytest.raises(VgmigrateError):
            connect_from_env(dict(env, ENTRA_CLIENT_SECRET="wrong")).me()
        emulator.roles = FULL_ROLES - {"AuditLog.Read.All"}
        with pytest.raises(EntraError):
            connect_from_env(env).provisioning_log(sp)
        bodies = list(emulator.bodies)
    problems = [p for answer in bodies for p in problems_of(*answer)]
    assert problems == [], problems[:10]
    seen = {_route_key(router.match(m, p.removeprefix("/v1.0"))[0]) for m, p, s, _ in bodies
            if s < 400 and not p.endswith("/token")}
    missing = set(ANSWERS) - seen
    assert not missing, f"routes no answer of this run exercised: {sorted(missing)}"
    assert {status for _, _, status, _ in bodies} >= {200, 201, 204, 400, 401, 403, 404, 429}


def test_the_validator_catches_an_undeclared_property_and_a_wrong_type():
    assert problems_of("GET", "/v1.0/groups/x", 200, {"id": "x", "displayName": "A", "memberCount": 3}) \
        == ["/v1.0/groups/x.memberCount: not a property of group"]
    assert problems_of("GET", "/v1.0/groups/x", 200, {"id": "x", "securityEnabled": "yes"}) \
        == ["/v1.0/groups/x.securityEnabled: 'yes' is not Edm.Boolean"]
    job = {"id": "j", "status": {"code": "Sleeping"}}
    assert re.search("not a synchronizationStatusCode", problems_of("GET", "/v1.0/servicePrincipals/s/synchronization/jobs/j", 200, job)[0])


def test_the_copy_matches_the_hash_and_commit_the_schemas_readme_records():
    import hashlib

    readme = (SCHEMAS / "README.md").read_text()
    assert hashlib.sha256(CSDL.read_bytes()).hexdigest() in readme
    assert "f54f11b60956ea7b185ca0447b2b80805836ec7b" in readme and "clean_v10_metadata/cleanMetadata.xml" in readme
