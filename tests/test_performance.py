"""Issue 12: parallel reads (same items, same order, no extra call), parallel verify and rollback
(same results and journal order per group as one at a time), and pacing at the rate-limit bound
(no 429, slowing down for a budget shared with others, waits announced). Speed itself is proven by
the benchmarks under bench/, not here."""

import collections
import gc
import math
import re
import threading
import time

import pytest

from engine_support import iam_state
from migrate import planfile
from migrate.cloudflare import CloudflareClient, run_parallel
from migrate.executor import apply_plan
from migrate.http import RateLimiter
from migrate.inventory import Inventory
from migrate.planner import PlanOptions, build_plan
from migrate.rollback import Rollback
from migrate.sandbox import Sandbox
from migrate.sandbox.seeds import demo_seed, generate_seed
from migrate.scan import run_scan
from migrate.verify import verify_run

GROUPS, MEMBERS = 30, 600


@pytest.fixture(scope="module")
def seed():
    return generate_seed(GROUPS, MEMBERS, random_seed=3)


def connect(sb, parallel, limiter=None):
    return CloudflareClient.connect(sb.base_url, sb.token, sb.account_id, parallel=parallel,
                                    limiter=limiter or RateLimiter(limit=None))


def track_concurrency(client):
    """Wraps the client's HTTP so that `peak[0]` is the most requests ever in flight at once."""
    original, lock, now, peak = client.http.request, threading.Lock(), [0], [0]

    def request(*args, **kwargs):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    client.http.request = request
    return peak


# -- parallel pages --------------------------------------------------------------------------------


def test_pages_after_the_first_are_fetched_concurrently_in_order_and_at_the_minimum(seed):
    with Sandbox(seed=seed, rate_limit=None, latency_ms=15) as sb:
        seen = {}
        for parallel in (1, 4):
            client = connect(sb, parallel)
            peak = track_concurrency(client)
            sb.reset_calls()
            members = [m["id"] for m in client.members()]
            users = [u["id"] for u in client.scim_users()]
            seen[parallel] = (members, users, len(sb.calls), peak[0])
        members, users, calls, peak = seen[4]
        assert (members, users) == seen[1][:2]  # the same items in the same order
        assert members == list(sb.state.members)
        assert calls == seen[1][2] == math.ceil(len(members) / 50) + math.ceil(len(users) / 100)
        assert seen[1][3] == 1 and 1 < peak <= 4


def test_a_listing_that_is_not_read_to_the_end_cancels_what_it_fetched_ahead(seed):
    with Sandbox(seed=seed, rate_limit=None, latency_ms=5) as sb:
        client = connect(sb, 4)
        listing = client.members()
        first = [next(listing) for _ in range(60)]  # into page 2
        listing.close()
        assert len(first) == 60
        pages = len([c for c in sb.calls if c[1].endswith("/members")])
        assert pages <= 2 + 4  # page 1, page 2, and at most `parallel` fetched ahead


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_a_started_listing_fetches_ahead_before_it_is_read(seed):
    with Sandbox(seed=seed, rate_limit=None, latency_ms=5) as sb:
        client = connect(sb, 4)
        listing = client.members().start()  # 600 members: 12 pages, 32 may be ahead of the reader
        pages = lambda: len([c for c in sb.calls if c[1].endswith("/members")])  # noqa: E731
        assert wait_for(lambda: pages() == 12), pages()
        assert [m["id"] for m in listing] == list(sb.state.members)
        assert pages() == 12  # reading asked for nothing more


def test_a_started_listing_whose_totals_lie_asks_for_page_2_alone():
    from test_cloudflare_client import client_with, lying_totals

    client, http = client_with(lying_totals)
    listing = client.members().start()
    assert wait_for(lambda: len(http.sent) == 2)
    time.sleep(0.05)  # anything more it were to ask for, it would have asked by now
    assert len(list(listing)) == 50
    assert len(http.sent) == 2


def test_run_parallel_keeps_the_order_of_its_items_and_raises_the_first_failure():
    assert run_parallel(lambda n: n * n, range(20), 4) == [n * n for n in range(20)]

    def boom(n):
        if n == 3:
            raise ValueError("three")
        return n

    with pytest.raises(ValueError, match="three"):
        run_parallel(boom, range(10), 4)


def test_scan_in_parallel_records_the_same_inventory_with_the_same_calls(seed, tmp_path):
    results = {}
    with Sandbox(seed=seed, rate_limit=None, latency_ms=5) as sb:
        for parallel in (1, 4):
            inventory = Inventory(tmp_path / f"p{parallel}.db")
            sb.reset_calls()
            scan_id, counts, _ = run_scan(connect(sb, parallel), inventory)
            results[parallel] = (inventory.scan(scan_id)["fingerprint"], counts, sorted(c[1] for c in sb.calls))
            inventory.close()
    assert results[1] == results[4]


# -- parallel verify and rollback -------------------------------------------------------------------


def applied(sb, tmp_path, name, on_existing="suffix"):
    """Scan, plan and apply on `sb`; returns the inventory and the apply run id."""
    inventory = Inventory(tmp_path / f"{name}.db")
    client = connect(sb, 4)
    scan_id, _, _ = run_scan(client, inventory)
    plan = planfile.seal(build_plan(inventory.load_scan(scan_id), PlanOptions(on_existing=on_existing), inventory.own_groups()))
    inventory.save_plan(planfile.inventory_row(plan))
    result = apply_plan(client, inventory, plan, parallel=4)
    assert result.status == "done", result.message
    return inventory, result.run_id


def meddle(sb):
    """Hand edits after the apply: one planned member removed, one unplanned member added."""
    groups = sorted((g for g in sb.state.snapshot()["user_groups"] if g["members"] and not g.get("scim_managed")),
                    key=lambda g: g["name"])[-3:]
    everyone = list(sb.state.members)
    sb.state.remove_group_member(groups[0]["id"], groups[0]["members"][0])
    extra = next(m for m in everyone if m not in groups[1]["members"])
    sb.state.add_group_members(groups[1]["id"], [extra])


def test_verify_in_parallel_finds_the_same_differences_with_the_same_calls(seed, tmp_path):
    with Sandbox(seed=seed, rate_limit=None, latency_ms=5) as sb:
        inventory, run_id = applied(sb, tmp_path, "verify")
        meddle(sb)
        found = {}
        for parallel in (1, 4):
            client = connect(sb, parallel)
            peak = track_concurrency(client)
            sb.reset_calls()
            _, diffs, counts = verify_run(client, inventory, run_id, parallel=parallel)
            found[parallel] = (diffs, counts, sorted(c[1] for c in sb.calls))
            assert peak[0] <= parallel + parallel  # group tasks, plus pages they fetch ahead
        assert found[1] == found[4]
        kinds = {d["kind"] for d in found[4][0]}
        assert {"member_missing", "unplanned_member"} <= kinds


def rollback_journal(inventory, rollback_id):
    return [(a["seq"], a["kind"], a["target"], a["method"], a["path"]) for a in inventory.actions(rollback_id)]


def test_rollback_in_parallel_undoes_the_same_and_keeps_newest_first_per_group(seed, tmp_path):
    outcome = {}
    for parallel in (1, 4):
        with Sandbox(seed=seed, rate_limit=None, latency_ms=5) as sb:
            before = iam_state(sb)
            inventory, run_id = applied(sb, tmp_path, f"rollback-{parallel}")
            meddle(sb)
            client = connect(sb, parallel)
            preview = Rollback(client, inventory, run_id, dry_run=True, parallel=parallel)
            preview.run()
            calls0 = len(sb.calls)
            job = Rollback(client, inventory, run_id, force=True, parallel=parallel)
            result = job.run()
            journal = rollback_journal(inventory, result.run_id)
            # Per group, the undo of its later steps comes before the undo of its earlier ones.
            undone = {}
            for action in inventory.actions(run_id):
                undone.setdefault(action["object_id"] or action["target"], []).append(action["seq"])
            outcome[parallel] = {
                "planned": [re.sub("[0-9a-f]{32}", "<id>", n) for n in preview.planned],  # ids differ between sandboxes
                "left_alone": [re.sub("[0-9a-f]{32}", "<id>", n) for n in preview.left_alone], "status": result.status,
                "calls": len(sb.calls) - calls0, "journal": sorted((k, t, m) for _, k, t, m, _ in journal),  # ids differ between sandboxes
                "restored": iam_state(sb) == before,
            }
            by_target = {}
            for seq, kind, target, method, path in journal:
                by_target.setdefault(target, []).append(kind)
            for kinds in by_target.values():  # members restored before the group's policies or delete
                assert kinds == sorted(kinds, key=lambda k: k != "undo_add_members")
            if any(k == "undo_create_resource_group" for _, k, *_ in journal):
                assert journal[-1][1] == "undo_create_resource_group"
    assert outcome[1] == outcome[4]
    assert outcome[4]["restored"] and outcome[4]["status"] == "rolled_back"
    assert outcome[4]["left_alone"]  # the meddled groups, named in the same order


def test_rollback_groups_each_groups_undos_newest_first_and_resource_groups_last():
    from migrate.rollback import _by_group

    def action(seq, step, kind, request, object_id=None):
        return {"seq": seq, "step": step, "kind": kind, "request": request, "object_id": object_id}

    journal = [
        action(1, "rg", "create_resource_group", {"name": "rg"}, "rg1"),
        action(2, "g001", "create_user_group", {"name": "A"}, "ga"),
        action(3, "g001.members", "add_members", {"group": "ga"}),
        action(4, "g002", "adopt_user_group", {"id": "gb"}),
        action(5, "g002.members", "add_members", {"group": "gb"}),
        action(6, "g003", "create_user_group", {"name": "C"}, None),  # its answer was lost
        action(7, "g004", "create_idp_group", {"name": "D"}, "uuid-d"),
        action(8, "scope", "scope_idp_groups", {"provider": 1}),
        action(9, "g004.sync", "sync_idp_group", {"group": "uuid-d"}, "gd"),
        action(10, "g004.policy", "attach_idp_policy", {"id": "gd"}),
    ]
    groups, last = _by_group(journal)
    assert [[a["seq"] for a in g] for g in groups] == [[10, 9, 7], [6], [5, 4], [3, 2]]
    assert [a["seq"] for a in last] == [8, 1]  # the sync scope after every group, the resource group last


# -- pacing at the rate-limit bound -------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Window:
    """The server: a sliding window of accepted requests, one budget for everyone using the token."""

    def __init__(self, limit, period):
        self.limit, self.period, self.hits = limit, period, collections.deque()

    def hit(self, now):
        while self.hits and self.hits[0] <= now - self.period:
            self.hits.popleft()
        allowed = len(self.hits) < self.limit
        if allowed:
            self.hits.append(now)
        reset = max(1, math.ceil(self.hits[0] + self.period - now)) if self.hits else 1
        return allowed, self.limit - len(self.hits), reset


def simulate(calls, limit=1200, period=300.0, others_per_second=0.0, latency=0.05, burst=120):
    """One client sending `calls` requests, one at a time, to a sliding-window server shared with
    someone sending `others_per_second`. Returns (finish time, our rejected calls, announced waits)."""
    clock, messages = Clock(), []
    server = Window(limit, period)
    limiter = RateLimiter(limit, period, clock=clock, sleep=clock.sleep, burst=burst, notify=messages.append)
    rejected, others_next = 0, 0.0
    for _ in range(calls):
        limiter.acquire()
        clock.now += latency / 2  # the request arrives
        while others_per_second and others_next <= clock.now:
            server.hit(others_next)  # the other client's calls (a 429 for them is not ours)
            others_next += 1 / others_per_second
        allowed, remaining, reset = server.hit(clock.now)
        rejected += not allowed
        clock.now += latency / 2
        limiter.observe({"Ratelimit": f'"default";r={remaining};t={reset}', "Ratelimit-Policy": f'"burst";q={limit};w={period:g}'})
        limiter.done(latency)
    return clock.now, rejected, messages


@pytest.mark.parametrize("calls", [600, 3000, 6000])
def test_a_long_run_finishes_within_the_rate_limit_bound_without_a_429(calls):
    finished, rejected, messages = simulate(calls)
    bound = calls / (1200 / 300)
    assert rejected == 0
    assert finished <= 1.1 * bound
    if calls > 1200:
        assert messages and messages[0].startswith("waiting 30 s for the API rate limit (1200 requests / 5 min)")


def test_a_short_run_is_not_paced():
    finished, rejected, messages = simulate(100)
    assert rejected == 0 and finished == pytest.approx(100 * 0.05) and messages == []


def test_pacing_spreads_calls_after_the_burst(clock):
    limiter = RateLimiter(1200, 300, clock=clock, sleep=clock.sleep, burst=10)
    for _ in range(10):
        limiter.acquire()
    assert clock.now == 0
    limiter.acquire()
    limiter.acquire()
    assert clock.now == pytest.approx(2 * 300 / 1200)  # one every 0.25 s


def test_a_budget_shared_with_another_client_slows_down_and_gets_no_429():
    calls, others = 2400, 2.0  # the other client uses 600 of the 1200 per 5 minutes
    finished, rejected, messages = simulate(calls, others_per_second=others)
    assert rejected == 0
    assert finished <= 1.1 * calls / (1200 / 300 - others)  # the bound of what is left
    assert any("other clients of this API token use about" in m for m in messages)


def test_the_cli_says_on_stderr_why_it_waits(sandbox, tmp_path):
    from engine_support import run

    sandbox.inject("GET", r"/iam/permission_groups$", "429")  # Retry-After: 1
    limiter_waits = run(sandbox, tmp_path / "inv.db", "scan").stderr
    assert "waiting 1 s for the API rate limit: the server answered 429 and asked to wait (1200 requests / 5 min)" in limiter_waits


def test_a_429_during_apply_waits_as_told_and_loses_no_work(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        inventory = Inventory(tmp_path / "inv.db")
        client = connect(sb, 4)
        scan_id, _, _ = run_scan(client, inventory)
        plan = planfile.seal(build_plan(inventory.load_scan(scan_id), PlanOptions(on_existing="adopt"), inventory.own_groups()))
        sb.inject("POST", r"/members$", "429", times=2)
        sb.reset_calls()
        result = apply_plan(client, inventory, plan, parallel=4)
        assert result.status == "done"
        assert [c[2] for c in sb.calls].count(429) == 2
        writes = [c for c in sb.calls if c[0] in ("POST", "PUT") and c[2] == 200]
        assert len(writes) == len(plan["steps"])  # every step done once
        _, diffs, _ = verify_run(client, inventory, result.run_id)
        assert diffs == []


def test_a_real_paced_run_against_a_rate_limited_sandbox_gets_no_429():
    # Cloudflare's window with time scaled: the limiter's margin for a request that reaches the
    # server late (at most 10% of the window, 30 s at Cloudflare) is 200 ms here. This process
    # holds every earlier test's objects, and a full garbage collection of them stalls client and
    # server alike for about as long: frozen, they are not collected again during the run.
    gc.collect()
    gc.freeze()
    try:
        with Sandbox(seed=demo_seed(), rate_limit=(80, 2.0)) as sb:
            client = connect(sb, 4, RateLimiter(80, 2.0, burst=4, notice_seconds=10))
            run_parallel(lambda _: list(client.permission_groups()), range(100), 4)
            statuses = [c[2] for c in sb.calls]
    finally:
        gc.unfreeze()
    assert len(statuses) >= 100 and 429 not in statuses
