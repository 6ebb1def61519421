"""Benchmark: apply a plan for a generated account on a sandbox with network latency.

    python bench/apply.py [--groups 500] [--members 5000] [--latency-ms 50] [--parallel 8] [--profile]

Scans and plans on a zero-latency sandbox, then applies the same plan to two fresh sandboxes with
`--latency-ms` (each in its own process), from two copies of the inventory: at `--parallel` and
at 1. Prints calls versus the minimum, wall time versus the ideal (calls x latency / parallel) and
the speed-up. Exits 1 if a target is missed: calls equal to the minimum at both settings, wall
time within 1.3x of the ideal at `--parallel`.
"""

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time

from common import PAGE_SIZES, pages, print_table, sandbox_process, seed_sizes

from migrate import planfile
from migrate.cloudflare import CloudflareClient
from migrate.executor import apply_plan
from migrate.http import RateLimiter
from migrate.inventory import Inventory
from migrate.planner import PlanOptions, build_plan
from migrate.scan import run_scan

MAX_RATIO = 1.3


def minimum_calls(sizes):
    """The staleness read (user group pages and the resource group list), one account-wide
    resource group unless one exists, and per virtual group one create carrying its policy and
    one member add carrying all its members (none for a group without account members)."""
    staleness = pages(sizes["user_groups"], PAGE_SIZES["user_groups"]) + 1
    resource_group = 0 if sizes["account_wide_resource_groups"] else 1
    return staleness + resource_group + sizes["scim_groups"] + sizes["virtual_groups_with_members"]


def connect(base_url, token, account_id):
    return CloudflareClient.connect(base_url, token, account_id, limiter=RateLimiter(limit=None))


def scan_and_plan(args, folder):
    """A sealed plan and the inventory it was made from, closed so that it can be copied."""
    db = os.path.join(folder, "planned.db")
    with sandbox_process(args.groups, args.members) as (base_url, account_id, token):
        inventory = Inventory(db)
        scan_id, _, _ = run_scan(connect(base_url, token, account_id), inventory)
        plan = planfile.seal(build_plan(inventory.load_scan(scan_id), PlanOptions(), inventory.own_groups()))
        inventory.close()
    return db, plan


def timed_apply(args, planned_db, plan, parallel, profile=False):
    """Apply `plan` at `parallel` to a fresh sandbox from a fresh copy of the inventory."""
    db = planned_db.replace("planned", f"parallel-{parallel}")
    shutil.copyfile(planned_db, db)
    with sandbox_process(args.groups, args.members, latency_ms=args.latency_ms) as (base_url, account_id, token):
        client = connect(base_url, token, account_id)
        inventory = Inventory(db)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = apply_plan(client, inventory, plan, parallel=parallel)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        inventory.close()
    if result.status != "done":
        raise SystemExit(f"apply at --parallel {parallel} ended {result.status}: {result.message}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return client.http.calls, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the parallel apply")
    args = parser.parse_args()

    sizes = seed_sizes(args.groups, args.members)
    minimum = minimum_calls(sizes)
    latency = args.latency_ms / 1000
    folder = tempfile.mkdtemp(prefix="vgmigrate-bench-")
    try:
        planned_db, plan = scan_and_plan(args, folder)
        calls, wall = timed_apply(args, planned_db, plan, args.parallel, profile=args.profile)
        serial_calls, serial_wall = timed_apply(args, planned_db, plan, 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    ideal = calls * latency / args.parallel
    serial_ideal = serial_calls * latency
    ratio = wall / ideal
    rows = [
        ("account", f"{args.groups:,} groups, {args.members:,} members, {args.latency_ms} ms latency", "", None),
        ("plan", f"{len(plan['steps']):,} steps", "", None),
        (f"calls, --parallel {args.parallel}", f"{calls:,}", f"= {minimum:,} (minimum)", calls == minimum),
        ("calls, --parallel 1", f"{serial_calls:,}", f"= {minimum:,} (minimum)", serial_calls == minimum),
        (f"wall, --parallel {args.parallel}", f"{wall:.2f} s (ideal {ideal:.2f} s, {ratio:.2f}x)", f"<= {MAX_RATIO}x ideal", ratio <= MAX_RATIO),
        ("wall, --parallel 1", f"{serial_wall:.2f} s (ideal {serial_ideal:.2f} s, {serial_wall / serial_ideal:.2f}x)", "", None),
        ("speed-up", f"{serial_wall / wall:.1f}x", "", None),
    ]
    ok = print_table(rows, "vgmigrate apply benchmark (sandbox in its own process)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
