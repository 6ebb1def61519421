"""CloudflareClient.audit_logs_v2 against the sandbox: required window, cursor paging, cf-rays."""

import datetime as dt

import pytest

from migrate import cloudflare
from migrate.cloudflare import CloudflareClient
from migrate.errors import CloudflareError


def test_audit_logs_v2_walks_every_cursor_page(sandbox, monkeypatch):
    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
    rays = []
    for i in range(5):
        client.create_user_group(f"Paged {i}")
        rays.append(client.last_ray)
    monkeypatch.setattr(cloudflare, "PER_PAGE_AUDIT_LOGS_V2", 2)
    sandbox.reset_calls()
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    entries = list(client.audit_logs_v2(since, "2999-01-01"))
    assert [e["raw"]["cf_ray_id"] for e in entries] == [r.split("-")[0] for r in reversed(rays)]
    assert [c[2] for c in sandbox.calls] == [200, 200, 200]  # 2 + 2 + 1, no extra empty page
    with pytest.raises(CloudflareError) as caught:
        list(client.audit_logs_v2(None, "2999-01-01"))  # `since` is required
    assert caught.value.status == 400
