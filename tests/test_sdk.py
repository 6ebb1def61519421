"""The official `cloudflare` Python SDK (5.x) can drive the sandbox: CRUD and paginators."""

import pytest

cloudflare = pytest.importorskip("cloudflare", reason="the official cloudflare SDK is not installed")


@pytest.fixture
def cf(sandbox):
    client = cloudflare.Cloudflare(api_token=sandbox.token, base_url=sandbox.base_url, max_retries=0)
    yield client
    client.close()


def test_paginators_walk_every_page(cf, sandbox):
    acct = sandbox.account_id
    groups = list(cf.iam.permission_groups.list(account_id=acct, per_page=5))
    assert [g.id for g in groups] == list(sandbox.state.permission_groups)
    members = list(cf.accounts.members.list(account_id=acct, per_page=5))
    assert [m.id for m in members] == list(sandbox.state.members)
    assert members[0].user.email == members[0].email
    with pytest.warns(DeprecationWarning):  # the SDK flags the legacy roles API
        roles = list(cf.accounts.roles.list(account_id=acct, per_page=5))
    assert {r.name for r in roles} >= {"Administrator", "Super Administrator - All Privileges"}
    # ceil(n / 5) pages plus the empty page that ends each walk
    pages = [c for c in sandbox.calls if c[1].endswith("/iam/permission_groups")]
    assert len(pages) == -(-len(groups) // 5) + 1


def test_user_group_lifecycle_through_the_sdk(cf, sandbox):
    acct = sandbox.account_id
    scope = {"key": f"com.cloudflare.api.account.{acct}", "objects": [{"key": "*"}]}
    rg = cf.iam.resource_groups.create(account_id=acct, name="Whole account", scope=scope)
    dns = sandbox.state.permission_group_ids_by_name["DNS"]
    group = cf.iam.user_groups.create(
        account_id=acct,
        name="DNS admins",
        policies=[{"access": "allow", "permission_groups": [{"id": dns}], "resource_groups": [{"id": rg.id}]}],
    )
    assert group.policies[0].permission_groups[0].name == "DNS"
    listed = list(cf.iam.user_groups.list(account_id=acct, fuzzy_name="dns", per_page=1))
    assert [g.id for g in listed] == [group.id]

    billing = sandbox.state.permission_group_ids_by_name["Billing"]
    updated = cf.iam.user_groups.update(
        group.id,
        account_id=acct,
        policies=[{"id": group.policies[0].id, "access": "allow", "permission_groups": [{"id": billing}], "resource_groups": [{"id": rg.id}]}],
    )
    assert [p.permission_groups[0].name for p in updated.policies] == ["Billing"]
    assert updated.policies[0].id == group.policies[0].id

    ids = list(sandbox.state.members)[:7]
    added = cf.iam.user_groups.members.create(group.id, account_id=acct, members=[{"id": i} for i in ids[:6]])
    assert [m.id for m in added] == ids[:6]
    replaced = cf.iam.user_groups.members.update(group.id, account_id=acct, members=[{"id": i} for i in ids[2:]])
    assert {m.id for m in replaced} == set(ids[2:])
    walked = list(cf.iam.user_groups.members.list(group.id, account_id=acct, per_page=2))
    assert {m.id for m in walked} == set(ids[2:])
    one = cf.iam.user_groups.members.get(ids[2], account_id=acct, user_group_id=group.id)
    assert one.id == ids[2]
    removed = cf.iam.user_groups.members.delete(ids[2], account_id=acct, user_group_id=group.id)
    assert removed.id == ids[2]
    assert set(sandbox.state.group_member_ids(group.id)) == set(ids[3:])

    assert cf.iam.user_groups.get(group.id, account_id=acct).name == "DNS admins"
    assert cf.iam.user_groups.delete(group.id, account_id=acct).id == group.id
    assert cf.iam.resource_groups.delete(rg.id, account_id=acct).id == rg.id
    with pytest.raises(cloudflare.NotFoundError):
        cf.iam.user_groups.get(group.id, account_id=acct)


def test_sdk_sees_cloudflare_errors(cf, sandbox):
    with pytest.raises(cloudflare.BadRequestError) as caught:
        cf.iam.user_groups.create(account_id=sandbox.account_id, name="CF-Admins")
    assert "CF" in str(caught.value)
    verified = cf.accounts.tokens.verify(account_id=sandbox.account_id)
    assert verified.status == "active"
    bad = cloudflare.Cloudflare(api_token="not-the-token", base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(cloudflare.PermissionDeniedError):
        list(bad.iam.user_groups.list(account_id=sandbox.account_id))
    bad.close()


# ---- strict response validation: every endpoint the tool uses, as the SDK types it -----------------


@pytest.fixture
def strict(sandbox):
    client = cloudflare.Cloudflare(api_token=sandbox.token, base_url=sandbox.base_url, max_retries=0,
                                   _strict_response_validation=True)
    yield client
    client.close()


def test_permission_group_meta_is_typed_as_the_sdk_types_it(strict, sandbox):
    acct = sandbox.account_id
    groups = list(strict.iam.permission_groups.list(account_id=acct, per_page=50))
    assert len(groups) == len(sandbox.state.permission_groups)
    deprecated = [g for g in groups if g.meta and g.meta.deprecated is not None]
    assert deprecated and {g.meta.deprecated for g in deprecated} <= {"true", "false"}
    one = strict.iam.permission_groups.get(deprecated[0].id, account_id=acct)
    assert one.meta.deprecated == deprecated[0].meta.deprecated


def test_every_endpoint_the_tool_uses_passes_strict_validation(strict, sandbox):
    acct = sandbox.account_id
    assert [a.id for a in strict.accounts.list()] == [acct]
    assert strict.accounts.get(account_id=acct).id == acct
    assert strict.accounts.tokens.verify(account_id=acct).status == "active"
    members = list(strict.accounts.members.list(account_id=acct, per_page=50))
    assert len(members) == len(sandbox.state.members)
    assert strict.accounts.members.get(members[0].id, account_id=acct).id == members[0].id
    with pytest.warns(DeprecationWarning):
        roles = list(strict.accounts.roles.list(account_id=acct, per_page=50))
    with pytest.warns(DeprecationWarning):
        assert strict.accounts.roles.get(roles[0].id, account_id=acct).id == roles[0].id

    scope = {"key": f"com.cloudflare.api.account.{acct}", "objects": [{"key": "*"}]}
    rg = strict.iam.resource_groups.create(account_id=acct, name="Whole account", scope=scope)
    assert strict.iam.resource_groups.get(rg.id, account_id=acct).id == rg.id
    assert rg.id in {r.id for r in strict.iam.resource_groups.list(account_id=acct)}
    assert strict.iam.resource_groups.update(rg.id, account_id=acct, name="Everything").name == "Everything"

    # A deprecated permission group embedded in user group responses: meta.deprecated as a string.
    deprecated = next(pg["id"] for pg in sandbox.state.permission_groups.values() if "deprecated" in pg["meta"])
    policy = {"access": "allow", "permission_groups": [{"id": deprecated}], "resource_groups": [{"id": rg.id}]}
    group = strict.iam.user_groups.create(account_id=acct, name="Strict", policies=[policy])
    assert group.policies[0].permission_groups[0].meta.deprecated in ("true", "false")
    listed = list(strict.iam.user_groups.list(account_id=acct))
    assert group.id in {g.id for g in listed}
    assert strict.iam.user_groups.get(group.id, account_id=acct).policies[0].id == group.policies[0].id
    updated = strict.iam.user_groups.update(group.id, account_id=acct, name="Strict 2",
                                            policies=[{**policy, "id": group.policies[0].id}])
    assert updated.policies[0].id == group.policies[0].id

    ids = list(sandbox.state.members)[:3]
    assert [m.id for m in strict.iam.user_groups.members.create(group.id, account_id=acct, members=[{"id": ids[0]}])] == ids[:1]
    assert {m.id for m in strict.iam.user_groups.members.update(group.id, account_id=acct, members=[{"id": i} for i in ids])} == set(ids)
    assert {m.id for m in strict.iam.user_groups.members.list(group.id, account_id=acct)} == set(ids)
    assert strict.iam.user_groups.members.get(ids[0], account_id=acct, user_group_id=group.id).user.id
    assert strict.iam.user_groups.members.delete(ids[0], account_id=acct, user_group_id=group.id).id == ids[0]

    since, before = "2000-01-01", "2999-01-01"
    v1 = list(strict.audit_logs.list(account_id=acct, since=since, before=before, per_page=1000))
    assert v1 and all(e.resource.id for e in v1)
    v2 = list(strict.accounts.logs.audit.list(account_id=acct, since=since, before=before, limit=2))
    assert len(v2) == len(sandbox.state.audit_v2_entries()) and v2[0].raw.cf_rayid and v2[0].action.time

    assert strict.iam.user_groups.delete(group.id, account_id=acct).id == group.id
    assert strict.iam.resource_groups.delete(rg.id, account_id=acct).id == rg.id
    new = strict.accounts.members.create(account_id=acct, email="strict@acme-corp.example", roles=[roles[0].id])
    assert strict.accounts.members.delete(new.id, account_id=acct).id == new.id


def test_user_token_verify_passes_strict_validation():
    from migrate.sandbox import Sandbox

    with Sandbox(token_kind="user", rate_limit=None) as sb:
        client = cloudflare.Cloudflare(api_token=sb.token, base_url=sb.base_url, max_retries=0, _strict_response_validation=True)
        assert client.user.tokens.verify().status == "active"
        client.close()
