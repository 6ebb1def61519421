"""Contract: every answer the Okta emulator gives in a walk over everything vgmigrate does with Okta
(the client's calls, its failures, the push's outcomes) is valid against Okta's own OpenAPI for that
operation (tests/schemas/okta/management-subset.json), and every operation in the subset is met."""

import json
import re
from urllib.parse import urlsplit

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from migrate.cloudflare import CloudflareClient
from migrate.errors import OktaError
from migrate.idp.okta import OktaClient
from migrate.sandbox.okta import OktaSandbox
from schema_files import OKTA as SPEC_PATH

SPEC = json.loads(SPEC_PATH.read_text())
SPEC_URI = "urn:okta:management-subset"
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT4))
TEMPLATES = [(re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", p) + "$"), p) for p in sorted(SPEC["paths"], key=lambda p: -len(p))]


def _pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def spec_path(path):
    # /api/v1/users/me is served by the {id} operation; a literal path wins over a template.
    return next((template for pattern, template in TEMPLATES if pattern.match(path) and "{" not in template and template == path), None) \
        or next((template for pattern, template in TEMPLATES if pattern.match(path)), None)


def check(method, path, status, content_type, body):
    template = spec_path(path)
    assert template, f"{method} {path} is not in the subset"
    operation = SPEC["paths"][template][method.lower()]
    declared = operation["responses"]
    if str(status) in declared:
        where = ["paths", template, method.lower(), "responses", str(status)]
        answer = declared[str(status)]
        if "$ref" in answer:
            where = ["components", "responses", answer["$ref"].rsplit("/", 1)[1]]
            answer = SPEC["components"]["responses"][where[-1]]
    else:
        assert status >= 400, f"{method} {template} answered {status}, the schema declares {sorted(declared)}"
        where, answer = None, {"content": {"application/json": {}}}  # an undeclared error: Okta's Error object
    content = answer.get("content")
    if not content:
        assert body is None, f"{method} {template} {status} declares no body"
        return template
    media = next(iter(content))
    assert content_type.split(";")[0] == media
    ref = f"{SPEC_URI}#/{_pointer(*where, 'content', media, 'schema')}" if where else f"{SPEC_URI}#/components/schemas/Error"
    validator = OAS30Validator({"$ref": ref}, registry=REGISTRY, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{method} {template} {status}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return template


class Recorder:
    def __init__(self):
        self.seen = []

    def __call__(self, response, *args, **kwargs):
        body = response.json() if response.content else None
        self.seen.append((response.request.method, urlsplit(response.url).path, response.status_code,
                          response.headers.get("Content-Type", ""), body))


def recorded(client, recorder):
    client.http.session.hooks["response"].append(recorder)
    return client


def test_every_answer_in_a_full_walk_is_valid_against_oktas_schema(sandbox):
    recorder = Recorder()
    with OktaSandbox(cloudflare=sandbox, access_tokens={"at-read": ["okta.groups.read"]}, push_delay=(0.0, 0.02)) as okta:
        admin = recorded(OktaClient.connect(okta.base_url, api_token=okta.token), recorder)
        admin.page_size = 2
        cf = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
        facts = admin.plan_facts(cf)
        app = facts["provider"]["pk"]
        groups = admin.cf_groups()
        made = admin.create_group("Administrator", groups[0]["users"], {"vgmigrate": {"plan": "p"}})
        admin.set_members(made["pk"], groups[0]["users"][:1])
        admin.set_scope(app, admin.scope_of(app) + [made["pk"]])
        admin.push(app, made["pk"])
        okta.settle()
        admin.mapping_for(app, made["pk"])
        mapping = admin.mappings(app, made["pk"])[0]
        admin._call("GET", admin.mapping_path(app, mapping["id"]))
        admin._call("GET", f"{admin.scope_path(app)}/{made['pk']}")
        admin.group_pushes(app, made["pk"])
        admin.features(app)
        admin.app(app)
        admin._call("GET", "/api/v1/users/me")
        failing = admin.create_group("CFO Office", [], {"vgmigrate": {"plan": "p"}})
        admin.push(app, failing["pk"])
        okta.settle()
        assert admin.push_problems(app, failing["pk"])
        for _, _, call, _ in admin.unpush_calls(app, made["pk"]):
            call()
        admin.set_scope(app, [g for g in admin.scope_of(app) if g != made["pk"]])
        admin.delete_group(made["pk"])
        # Failures: each in Okta's error shape.
        with pytest.raises(OktaError):
            admin.create_group("Engineering", [], {"vgmigrate": {"plan": "other"}})  # 400: the name is taken
        with pytest.raises(OktaError):
            admin._call("DELETE", admin.mapping_path(app, groups[0]["pk"]), {"deleteTargetGroup": "true"})  # 404
        active = admin.mapping_for(app, groups[0]["pk"])
        with pytest.raises(OktaError):
            admin._call("DELETE", admin.mapping_path(app, active["id"]), {"deleteTargetGroup": "false"})  # 400: still ACTIVE
        assert admin.group("00gNOSUCHGROUP0000000") is None
        okta.inject("GET", r"^/api/v1/apps$", "429")
        admin.apps()
        reader = recorded(OktaClient.connect(okta.base_url, access_token="at-read"), recorder)
        with pytest.raises(OktaError):
            reader.create_group("x", [])  # 403: scope
        with pytest.raises(OktaError):
            recorded(OktaClient.connect(okta.base_url, api_token="00wrong"), recorder).me()  # 401
        okta.settle()
    met = set()
    for method, path, status, content_type, body in recorder.seen:
        met.add((spec_path(path), method.lower()))
        check(method, path, status, content_type, body)
    wanted = {(p, m) for p, item in SPEC["paths"].items() for m in item if m != "parameters"}
    assert wanted - met == set(), "operations in the subset no test met"
    assert {s for *_, s, _, _ in recorder.seen} >= {200, 201, 204, 400, 401, 403, 404, 429}


def test_the_check_catches_a_body_okta_would_never_send():
    with pytest.raises(AssertionError):
        check("GET", "/api/v1/apps/0oa1/group-push/mappings/gPm1", 200, "application/json", {"id": "gPm1", "status": "PUSHING"})
    with pytest.raises(AssertionError):
        check("GET", "/api/v1/groups", 200, "application/json", {"id": "00g1"})  # a list, not an object


def test_the_subset_names_its_source_and_matches_its_recorded_hash():
    import hashlib

    readme = (SPEC_PATH.parent.parent / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `okta/management-subset.json` |"))
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() in row
    assert SPEC["x-source"]["commit"] in row and SPEC["x-source"]["sha256"] in row
