"""Benchmark: the whole migration (scan, plan, apply, verify, rollback) on generated accounts, against
a sandbox in its own process with network latency and Cloudflare's rate limit with time scaled,
and the two baselines (bench/baselines.py) on the same machine in the same run.

    python bench/migration.py [--sizes 100,1000] [--members-per-group 20] [--latency-ms 50]
                              [--rate 1200/3] [--parallel 8] [--baseline 50,1000 | --no-baselines]
    python bench/migration.py --sizes 5000 --no-baselines      # 5,000 groups, 100,000 members

Each command runs in its own process (bench/step.py), so its wall time, CPU time and peak memory
are its own. Prints, per account, a table with the command that reproduces it, and exits 1 if a
target is missed: calls equal to the minimum; wall time within 1.1x of the rate-limit bound when it
dominates, else within 1.3x of the latency bound; no 429; peak RSS under 250 MB; scan + plan + apply
at least 25x faster than the SDK script and 3x faster than the careful one.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PAGE_SIZES, compile_bytecode, pages, print_table, sandbox_process, scan_minimum, seed_sizes

HERE = Path(__file__).resolve().parent
COMMANDS = ("scan", "plan", "apply", "verify", "rollback")
MODULES = {  # what each command imports before its first call (start-up time)
    "scan": "migrate.cli, migrate.scan, migrate.cloudflare, migrate.inventory",
    "plan": "migrate.cli, migrate.planner, migrate.planfile, migrate.inventory",
    "apply": "migrate.cli, migrate.executor, migrate.cloudflare, migrate.planfile",
    "verify": "migrate.cli, migrate.verify, migrate.cloudflare",
    "rollback": "migrate.cli, migrate.rollback, migrate.cloudflare",
}
MAX_RSS_MB = 250


def step(command, sandbox, rate, parallel, db=None, plan=None):
    base_url, account, token = sandbox
    args = [sys.executable, str(HERE / "step.py"), command, "--base-url", base_url, "--account", account, f"--token={token}",  # a token may start with "-"
            "--parallel", str(parallel)]
    if rate:
        args += ["--rate", rate]
    if db:
        args += ["--db", db]
    if plan:
        args += ["--plan", plan]
    started = time.perf_counter()
    out = subprocess.run(args, cwd=HERE.parent, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{command} failed:\n{out.stderr}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process": time.perf_counter() - started}


def startup(command):
    """Median wall time of a fresh interpreter importing what `command` needs."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {MODULES[command]}"], cwd=HERE.parent, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def minimums(sizes, plan):
    """The fewest calls each command can make, from the seed's sizes and the plan (never from the client)."""
    ugs = sizes["user_groups"]
    groups = [g for g in plan["groups"] if g.get("action") != "conflict"]
    created = len(groups)
    member_pages = sum(pages(len(g["members"]), 500) for g in groups)
    after = pages(ugs + created, PAGE_SIZES["user_groups"]) + 1  # user groups, and the resource groups
    rg_created = any(s["kind"] == "create_resource_group" for s in plan["steps"])
    return {
        "scan": scan_minimum(sizes),
        "plan": 0,
        "apply": pages(ugs, PAGE_SIZES["user_groups"]) + 1 + len(plan["steps"]),
        "verify": after + member_pages,
        "rollback": after + member_pages + created + rg_created,
    }


def run_tool(groups, members, args, folder, commands=COMMANDS):
    sizes = seed_sizes(groups, members)
    db, plan_path = os.path.join(folder, f"{groups}.db"), os.path.join(folder, f"{groups}.plan.json")
    results = {}
    with sandbox_process(groups, members, latency_ms=args.latency_ms, rate_limit=args.rate) as sandbox:
        for command in commands:
            if args.rate and results:
                # Let the previous command's calls leave the server's window: each command's bound
                # assumes the whole budget, as a person running them minutes apart has it.
                time.sleep(float(args.rate.split("/")[1]))
            results[command] = step(command, sandbox, args.rate, args.parallel, db=db, plan=plan_path)
    with open(plan_path) as handle:
        plan = json.load(handle)
    return sizes, results, minimums(sizes, plan)


def bounds(calls, args):
    limit, period = (float(x) for x in args.rate.split("/")) if args.rate else (float("inf"), 1.0)
    rate_bound = calls / (limit / period)
    latency_bound = calls * args.latency_ms / 1000 / args.parallel
    return rate_bound, latency_bound


def tool_table(groups, members, sizes, results, minimum, starts, args, command_line):
    rows = [("account", f"{groups:,} groups, {members:,} members ({results['scan'].get('memberships', 0):,} memberships), "
                        f"{args.latency_ms} ms latency, rate limit {args.rate or 'none'}, --parallel {args.parallel}", "", None)]
    for command in COMMANDS:
        r = results[command]
        calls, wall = r["calls"], r["wall"]
        rate_bound, latency_bound = bounds(calls, args)
        governing, target = (rate_bound, 1.1) if rate_bound > latency_bound else (latency_bound, 1.3)
        ratio = wall / governing if governing else 0.0
        per_k = r["cpu"] / max(1, members / 1000) * 1000
        rows += [
            (f"{command}: calls", f"{calls:,} (minimum {minimum[command]:,})", "= minimum", calls == minimum[command]),
            (f"{command}: wall", f"{wall:.2f} s; rate bound {rate_bound:.2f} s, latency bound {latency_bound:.2f} s "
                                 f"({'rate' if rate_bound > latency_bound else 'latency'} bound dominates: {ratio:.2f}x)",
             f"<= {target}x" if calls else "", (ratio <= target) if calls else None),
            (f"{command}: 429s, waits", f"{r['rate_limited']} 429s; {r.get('waits', 0)} announced waits"
                                        + (f" (first: {r['first_wait']})" if r.get("first_wait") else ""), "0 429s", r["rate_limited"] == 0),
            (f"{command}: peak RSS", f"{r['peak_rss_mb']:.0f} MB", f"< {MAX_RSS_MB} MB", r["peak_rss_mb"] < MAX_RSS_MB),
            (f"{command}: CPU in the tool", f"{r['cpu']:.2f} s ({per_k:.0f} ms per 1,000 members, start-up included)", "", None),
            (f"{command}: start-up (imports)", f"{starts[command] * 1000:.0f} ms", "", None),
        ]
        if "status" in r:
            rows.append((f"{command}: outcome", r["status"], "", r["status"] in ("done", "clean", "rolled_back")))
    ok = print_table(rows, f"vgmigrate migration benchmark: {groups:,} groups\n  reproduce: {command_line}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated numbers of virtual groups")
    parser.add_argument("--members-per-group", type=int, default=20, help="members = groups x this, at most 100,000")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--rate", default="1200/3", help="rate limit REQUESTS/SECONDS on both sides (1200/3: Cloudflare's, time scaled 100x)")
    parser.add_argument("--parallel", type=int, default=8, help="as vgmigrate's --parallel (default 8)")
    parser.add_argument("--baseline", default="50,1000", help="GROUPS,MEMBERS of the account the baselines migrate")
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    command_line = "python bench/migration.py " + " ".join(sys.argv[1:])

    compile_bytecode()
    starts = {command: startup(command) for command in COMMANDS}
    ok = True
    with tempfile.TemporaryDirectory(prefix="vgmigrate-bench-") as folder:
        for groups in (int(g) for g in args.sizes.split(",") if g):
            members = min(100_000, groups * args.members_per_group)
            sizes, results, minimum = run_tool(groups, members, args, folder)
            ok &= tool_table(groups, members, sizes, results, minimum, starts, args, command_line)
        if not args.no_baselines:
            ok &= baselines(args, folder, command_line)
    return 0 if ok else 1


def baselines(args, folder, command_line):
    groups, members = (int(x) for x in args.baseline.split(","))
    sizes, tool, minimum = run_tool(groups, members, args, folder, commands=("scan", "plan", "apply"))
    timed = {}
    for script in ("sdk-script", "careful-script"):
        with sandbox_process(groups, members, latency_ms=args.latency_ms, rate_limit=args.rate) as sandbox:
            timed[script] = step(script, sandbox, None, 1)
    ours = sum(tool[c]["wall"] for c in ("scan", "plan", "apply"))
    ours_process = sum(tool[c]["process"] for c in ("scan", "plan", "apply"))
    ours_calls = sum(tool[c]["calls"] for c in ("scan", "plan", "apply"))
    sdk, careful = timed["sdk-script"], timed["careful-script"]
    rows = [
        ("account", f"{groups:,} groups, {members:,} members, {args.latency_ms} ms latency, rate limit {args.rate}", "", None),
        ("vgmigrate scan + plan + apply", f"{ours:.2f} s ({ours_process:.2f} s with process start-up), {ours_calls:,} calls "
                                          f"(minimum {minimum['scan'] + minimum['apply']:,}), --parallel {args.parallel}", "", None),
        ("SDK script (default pages, a call per member)", f"{sdk['wall']:.2f} s, {sdk['calls']:,} calls, {sdk['rate_limited']} 429s", "", None),
        ("careful script (largest pages, a call per group)", f"{careful['wall']:.2f} s, {careful['calls']:,} calls, {careful['rate_limited']} 429s", "", None),
        ("speed-up vs the SDK script", f"{sdk['wall'] / ours:.1f}x ({sdk['wall'] / ours_process:.1f}x with start-up)", ">= 25x", sdk["wall"] / ours >= 25),
        ("speed-up vs the careful script", f"{careful['wall'] / ours:.1f}x ({careful['wall'] / ours_process:.1f}x with start-up)", ">= 3x", careful["wall"] / ours >= 3),
    ]
    return print_table(rows, f"vgmigrate scan + plan + apply against two baselines\n  reproduce: {command_line}")


if __name__ == "__main__":
    sys.exit(main())
