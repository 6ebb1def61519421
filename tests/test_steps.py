"""The steps package answers for every kind: each builds its own steps, and other modules ask it
rather than compare kind names."""

import pytest

from migrate.errors import VgmigrateError
from migrate.steps import (
    KINDS, AddMembers, AdoptUserGroup, AttachIdpPolicy, CreateIdpGroup, CreateResourceGroup, CreateUserGroup, DeleteIdpGroup,
    RemoveIdpMembers, ScopeIdpGroups, SyncIdpGroup, added_members, describe, is_kind, kind_of, kinds_where, plan_group_of,
)
from migrate.steps.setup import AssignIdpGroup, AttachBackchannelProvider, CreateApplication, CreateScimProvider, LinkCfGroup
from migrate.steps.okta import LinkPushMapping

ACCOUNT = "0" * 32
POLICY = {"access": "allow", "permission_groups": [{"id": "pg"}], "resource_groups": [{"id": "rg"}]}

BUILT = [
    CreateResourceGroup.build(ACCOUNT),
    CreateUserGroup.build("g001", "DNS", POLICY, after=["rg"]),
    AdoptUserGroup.build("g002", "dns", "ug1", [], {"id": "p1", **POLICY}, after=[]),
    AddMembers.build("g001", "DNS", "$g001", ["m1", "m2"], after=["g001"]),
    CreateIdpGroup.build("g003", "DNS", [7, 8], {"account": ACCOUNT, "permission_group": "pg"}),
    SyncIdpGroup.build("g003", "DNS", 1, ["m1"], scoped=True),
    AttachIdpPolicy.build("g003", "DNS", POLICY, rg_exists=False),
    ScopeIdpGroups.build({"pk": 1, "name": "Cloudflare SCIM"}, [{"id": "g003"}]),
    RemoveIdpMembers.build("c001", {"pk": "u-1", "name": "CF-x - DNS"}, [3, 2], ["a@x"], ["m1"]),
    DeleteIdpGroup.build("c001", "CF-x - DNS", {"group": "u-1", "provider": 1}, after=["c001"]),
    CreateScimProvider.build("idp.provider", "Cloudflare SCIM", {"name": "Cloudflare SCIM", "url": "https://x"}),
    CreateApplication.build("idp.application", "app", {"name": "app", "slug": "app", "backchannel_providers": [1]}),
    AttachBackchannelProvider.build("idp.attach", "app", {"slug": "app", "provider": 1}, {"backchannel_providers": []}),
    LinkCfGroup.build("idp.link001", "CF-x - DNS", {"provider": 1, "group": "u-1", "scim_id": "cloudflare-v1-x"}),
    AssignIdpGroup.build("idp.assign001", "CF-x - DNS", {"provider": "sp-1", "group": "u-1"}),
    LinkPushMapping.build("idp.push001", "CF-x - DNS", {"app": "0oa1", "group": "00g1", "target": "00g2"}),
]


def test_every_kind_builds_steps_of_its_own_kind_and_every_kind_is_built():
    assert sorted(s["kind"] for s in BUILT) == sorted(KINDS)
    for step in BUILT:
        assert set(step) >= {"id", "kind", "target", "after", "request", "inverse"}
        assert is_kind(step, type(kind_of(step))) and describe(step)


def test_a_step_of_a_plan_group_belongs_to_it_and_shared_steps_to_none():
    for step in BUILT:
        if "group" in step:
            assert plan_group_of(step["id"]) == step["group"]
    assert plan_group_of("rg") is None and plan_group_of("scope") is None


def test_the_members_a_step_adds_are_the_ones_it_sends():
    for step in BUILT:
        members = added_members(step)
        assert members == (step["request"]["members"] if kind_of(step).adds_members else [])


def test_an_unknown_kind_is_refused_in_one_line():
    with pytest.raises(VgmigrateError, match="unknown step kind 'teleport'"):
        kind_of({"kind": "teleport"})
