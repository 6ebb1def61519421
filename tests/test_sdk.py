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
