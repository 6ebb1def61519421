"""One command of a benchmarked migration, in its own process, so that its wall time, CPU time and
peak memory are its alone. Prints one JSON line. Used by bench/migration.py; runnable by hand:

    python bench/step.py scan|plan|apply|verify|rollback --db D --base-url U --account A --token T \
        [--rate 1200/3] [--parallel 8] [--plan plan.json]
    python bench/step.py sdk-script|careful-script ...   # the two baselines (bench/baselines.py)
"""

import argparse
import json
import resource
import sys
import time

STARTED = time.perf_counter()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--db")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", help="REQUESTS/SECONDS of the client's limiter (default: no client-side limit)")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--plan")
    args = parser.parse_args()

    if args.command in ("sdk-script", "careful-script"):
        import baselines  # and the libraries they use: imports are not timed, as for vgmigrate

        began = time.perf_counter()
        calls, rate_limited = baselines.RUN[args.command](args.base_url, args.token, args.account)
        report(began, calls=calls, rate_limited=rate_limited)
        return

    # Every command's imports before the clock starts: wall time is the command's work alone.
    from migrate import planfile
    from migrate.cli import render_plan
    from migrate.cloudflare import CloudflareClient
    from migrate.executor import apply_plan
    from migrate.http import RateLimiter
    from migrate.inventory import Inventory
    from migrate.planner import UNREAD_TABLES, PlanOptions, build_plan
    from migrate.rollback import Rollback
    from migrate.scan import run_scan
    from migrate.verify import verify_run

    waits = []
    if args.rate:
        limit, period = args.rate.split("/")
        # Cloudflare's pacing, with time scaled as the sandbox's: the burst and the notice threshold too.
        limiter = RateLimiter(int(limit), float(period), burst=max(1, int(limit) // 10),
                              notice_seconds=float(period) / 300, notify=waits.append)
    else:
        limiter = RateLimiter(limit=None, notify=waits.append)
    client = CloudflareClient.connect(args.base_url, args.token, args.account, parallel=args.parallel, limiter=limiter)
    inventory = Inventory(args.db)
    began = time.perf_counter()
    extra = {}
    if args.command == "scan":
        _, counts, _ = run_scan(client, inventory)
        extra = {"members": counts["members"], "memberships": counts["memberships"]}
    elif args.command == "plan":
        sealed = planfile.seal(build_plan(inventory.load_scan(inventory.last_scan(args.account)["id"], without=UNREAD_TABLES),
                                          PlanOptions(on_existing="suffix"), inventory.own_groups()))
        render_plan(sealed, "table", inventory, args.plan)  # the table `vgmigrate plan` prints
        inventory.save_plan(planfile.inventory_row(sealed))
        planfile.write(sealed, args.plan)
        extra = {"steps": len(sealed["steps"])}
    elif args.command == "apply":
        result = apply_plan(client, inventory, planfile.read(args.plan), parallel=args.parallel)
        extra = {"status": result.status}
    elif args.command == "verify":
        _, diffs, _ = verify_run(client, inventory, parallel=args.parallel)
        extra = {"status": "clean" if not diffs else f"{len(diffs)} differences"}
    elif args.command == "rollback":
        result = Rollback(client, inventory, parallel=args.parallel).run()
        extra = {"status": result.status}
    inventory.close()
    report(began, calls=client.http.calls, rate_limited=client.http.rate_limited,
           waits=len(waits), first_wait=waits[0] if waits else None, **extra)


def report(began, **figures):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "wall": time.perf_counter() - began,  # the command's work, imports excluded
        "cpu": usage.ru_utime + usage.ru_stime,  # the whole process, imports included
        "peak_rss_mb": usage.ru_maxrss / 1024,
        **figures,
    }))


if __name__ == "__main__":
    sys.exit(main())
