"""The official Okta SDK (`okta` on PyPI) drives the emulator: every call vgmigrate makes, through
the SDK's own models, and no field the emulator sends is lost in them (the SDK drops what its
models do not know, so a lost field is a field Okta would not send). The network beyond loopback
is shut for the test: the SDK must fetch nothing."""

import asyncio
import socket

import pytest
import requests

okta_sdk = pytest.importorskip("okta.client")

from migrate.sandbox.okta import OktaSandbox  # noqa: E402


@pytest.fixture
def loopback_only(monkeypatch):
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"the test shut the network: a connection to {host} was attempted")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def key_paths(value, prefix=""):
    """Every key path in a JSON value (list items share their list's path)."""
    if isinstance(value, dict):
        out = set()
        for key, item in value.items():
            if item is None:
                continue
            out.add(prefix + key)
            out |= key_paths(item, prefix + key + ".")
        return out
    if isinstance(value, list):
        return set().union(*(key_paths(v, prefix) for v in value)) if value else set()
    return set()


def dump(value):
    """What an SDK model holds, under the API's names (its own to_dict leaves out read-only fields,
    and one-of/any-of wrappers hold the real model in `actual_instance`)."""
    from pydantic import BaseModel

    if hasattr(value, "actual_instance"):
        return dump(value.actual_instance)
    if isinstance(value, BaseModel):
        out = {(info.alias or name): dump(getattr(value, name)) for name, info in type(value).model_fields.items()
               if name != "additional_properties"}
        out.update({k: dump(v) for k, v in (getattr(value, "additional_properties", None) or {}).items()})
        return out
    if isinstance(value, list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def lost(model_or_models, raw):
    """Key paths of the raw answer the SDK's model(s) do not carry."""
    models = model_or_models if isinstance(model_or_models, list) else [model_or_models]
    return key_paths(raw if isinstance(raw, list) else [raw]) - key_paths(dump(models))


def test_the_official_sdk_drives_the_emulator_and_loses_no_field(sandbox, monkeypatch, loopback_only):
    monkeypatch.setenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")  # the emulator speaks http on loopback
    with OktaSandbox(cloudflare=sandbox, push_delay=(0.0, 0.02)) as okta:
        raw = requests.Session()
        raw.headers["Authorization"] = f"SSWS {okta.token}"

        def get(path, **params):
            return raw.get(okta.base_url + path, params=params, timeout=5).json()

        async def walk():
            client = okta_sdk.Client({"orgUrl": okta.base_url, "token": okta.token, "authorizationMode": "SSWS",
                                      "rateLimit": {"maxRetries": 0}})
            app = okta.app_id
            checks = []
            groups, resp, err = await client.list_groups(search='profile.name sw "CF-"')
            assert err is None and groups
            checks.append((groups, get("/api/v1/groups", search='profile.name sw "CF-"')))
            source = groups[0].id
            users, _, err = await client.list_group_users(source)
            assert err is None and users
            checks.append((users, get(f"/api/v1/groups/{source}/users")))
            from okta.models import AddGroupRequest, OktaUserGroupProfile
            made, _, err = await client.add_group(AddGroupRequest(profile=OktaUserGroupProfile(name="Administrator", description='{"vgmigrate":{"plan":"p"}}')))
            assert err is None and made.profile.actual_instance.name == "Administrator"
            checks.append((made, get(f"/api/v1/groups/{made.id}")))
            for user in users:
                _, _, err = await client.assign_user_to_group(made.id, user.id)
                assert err is None
            apps, _, err = await client.list_applications()
            assert err is None and [a.actual_instance.id if hasattr(a, "actual_instance") else a.id for a in apps] == [app]
            connection, _, err = await client.get_default_provisioning_connection_for_application(app)
            assert err is None
            checks.append((connection, get(f"/api/v1/apps/{app}/connections/default")))
            from okta.models import ApplicationGroupAssignment
            assignment, _, err = await client.assign_group_to_application(app, made.id, ApplicationGroupAssignment())
            assert err is None and assignment.id == made.id
            checks.append((assignment, get(f"/api/v1/apps/{app}/groups/{made.id}")))
            assigned, _, err = await client.list_application_group_assignments(app)
            assert err is None and made.id in [a.id for a in assigned]
            app_users, _, err = await client.list_application_users(app)
            assert err is None and all(u.external_id for u in app_users)
            checks.append((app_users, get(f"/api/v1/apps/{app}/users")))
            from okta.models import CreateGroupPushMappingRequest, UpdateGroupPushMappingRequest
            mapping, _, err = await client.create_group_push_mapping(app, CreateGroupPushMappingRequest(source_group_id=made.id, target_group_name="Administrator"))
            assert err is None and mapping.status == "ACTIVE"
            okta.settle()
            mapping, _, err = await client.get_group_push_mapping(app, mapping.id)
            assert err is None and mapping.target_group_id and mapping.last_push
            checks.append((mapping, get(f"/api/v1/apps/{app}/group-push/mappings/{mapping.id}")))
            mappings, _, err = await client.list_group_push_mappings(app)
            assert err is None and len(mappings) == len(okta.state.apps[app]["mappings"])
            checks.append((mappings, get(f"/api/v1/apps/{app}/group-push/mappings")))
            events, _, err = await client.list_log_events()
            assert err is None and events
            checks.append((events, get("/api/v1/logs")))
            mapping, _, err = await client.update_group_push_mapping(app, mapping.id, UpdateGroupPushMappingRequest(status="INACTIVE"))
            assert err is None and mapping.status == "INACTIVE"
            _, _, err = await client.delete_group_push_mapping(app, mapping.id, True)
            assert err is None
            _, _, err = await client.unassign_application_from_group(app, made.id)
            assert err is None
            _, _, err = await client.delete_group(made.id)
            assert err is None
            return checks

        for model, answer in asyncio.run(walk()):
            assert lost(model, answer) == set(), f"the SDK's {type(model).__name__} has no place for these fields"
        okta.settle()
    with sandbox.state.lock:
        assert "Administrator" not in {g["name"] for g in sandbox.state.user_groups.values()}


def test_the_field_check_notices_a_lost_field():
    from okta.models import GroupPushMapping

    raw = {"id": "gPm1", "status": "ACTIVE", "sourceGroupId": "00g1", "pushState": "QUEUED"}
    assert lost(GroupPushMapping.from_dict(raw), raw) == {"pushState"}
