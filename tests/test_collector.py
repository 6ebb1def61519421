"""The cycle collector is paused while vgmigrate builds its large object graphs, and given back
as it was, whatever happens inside."""

import gc

import pytest

from engine_support import run
from migrate import inventory as inventory_module
from migrate import planner
from migrate.cloudflare import CloudflareClient
from migrate.collector import cycle_collection_paused
from migrate.errors import VgmigrateError
from migrate.inventory import Inventory, loads_shared
from migrate.planner import PlanOptions, build_plan
from migrate.scan import run_scan


@pytest.fixture
def collector_on():
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


def test_off_inside_and_on_again_after(collector_on):
    with cycle_collection_paused():
        assert not gc.isenabled()
        with cycle_collection_paused():  # nested: the inner one leaves it off
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_on_again_after_an_error(collector_on):
    with pytest.raises(RuntimeError), cycle_collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_left_off_when_it_was_off():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with cycle_collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        if was_enabled:
            gc.enable()


def test_a_scan_runs_with_it_off_and_gives_it_back(sandbox, tmp_path, collector_on):
    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id)
    seen = set()
    run_scan(client, Inventory(tmp_path / "inv.db"), progress=lambda phase, n=1: seen.add(gc.isenabled()))
    assert seen == {False}
    assert gc.isenabled()


def test_a_failed_scan_gives_it_back(sandbox, tmp_path, collector_on):
    sandbox.inject("GET", r"/members$", "5xx")
    client = CloudflareClient.connect(sandbox.base_url, sandbox.token, sandbox.account_id, max_retries=0)
    with pytest.raises(VgmigrateError):
        run_scan(client, Inventory(tmp_path / "inv.db"))
    assert gc.isenabled()


def test_planning_and_reading_a_plan_run_with_it_off(sandbox, tmp_path, collector_on, monkeypatch):
    db = tmp_path / "inv.db"
    run(sandbox, db, "scan")
    inventory = Inventory(db)
    data = inventory.load_scan(inventory.last_scan()["id"])
    seen = []

    def spying(real):
        def spy(*args, **kwargs):
            seen.append(gc.isenabled())
            return real(*args, **kwargs)
        return spy

    monkeypatch.setattr(planner, "role_resolver", spying(planner.role_resolver))
    monkeypatch.setattr(inventory_module.json, "loads", spying(inventory_module.json.loads))
    plan = build_plan(data, PlanOptions())
    assert loads_shared('{"steps": []}') == {"steps": []}
    assert seen == [False, False]
    assert plan["steps"] and gc.isenabled()
