"""Benchmark: scan a generated account on the sandbox (in its own process).

    python bench/scan.py [--groups 2000] [--members 50000] [--tracemalloc] [--profile]

Prints calls made versus the minimum, wall time, the tool's CPU time (all its threads) and its peak
memory. Exits 1 if a target is missed: calls equal to the minimum, peak RSS under 200 MB, a complete
scan (sandbox at zero latency).
"""

import argparse
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc

from common import print_table, sandbox_process, scan_minimum, seed_sizes

from migrate.cloudflare import CloudflareClient
from migrate.http import RateLimiter
from migrate.inventory import Inventory
from migrate.scan import run_scan

MAX_RSS_MB = 200


def rss_mb():
    """Current resident set size of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--members", type=int, default=50000)
    parser.add_argument("--tracemalloc", action="store_true", help="also report Python's traced peak (slows the scan)")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the scan")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key for --profile (cumulative, tottime)")
    args = parser.parse_args()

    sizes = seed_sizes(args.groups, args.members)
    minimum = scan_minimum(sizes)
    with tempfile.TemporaryDirectory(prefix="vgmigrate-bench-") as folder, \
            sandbox_process(args.groups, args.members) as (base_url, account_id, token):
        client = CloudflareClient.connect(base_url, token, account_id, limiter=RateLimiter(limit=None))
        inventory = Inventory(os.path.join(folder, "inventory.db"))
        rss_before = rss_mb()
        profiler = cProfile.Profile() if args.profile else None
        if args.tracemalloc:
            tracemalloc.start()
        started, cpu_before = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        _, counts, findings = run_scan(client, inventory)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        inventory.close()

    calls, http = client.http.calls, client.http.http_seconds
    # Instrumentation slows the tool and adds its own memory: memory is then not judged.
    judged = not (args.tracemalloc or args.profile)
    rows = [
        ("account", f"{args.groups:,} groups, {args.members:,} members", "", None),
        ("recorded", f"{counts['virtual_groups']:,} virtual groups, {counts['members']:,} members, "
                     f"{counts['memberships']:,} memberships, {len(findings):,} findings", "", None),
        ("API calls", f"{calls:,}", f"= {minimum:,} (minimum)", calls == minimum),
        ("wall time", f"{wall:.2f} s", "", None),
        ("HTTP time", f"{http:.2f} s, summed over up to {client.parallel} calls at once", "", None),
        ("CPU in the tool", f"{cpu:.2f} s, all threads ({cpu * 1000 / max(1, counts['members']) * 1000:.0f} ms per 1,000 members)", "", None),
        ("peak RSS", f"{peak_rss:.0f} MB (at start of scan {rss_before:.0f} MB)",
         f"< {MAX_RSS_MB} MB" if judged else "not judged (instrumented)", peak_rss < MAX_RSS_MB if judged else None),
    ]
    if traced_peak is not None:
        rows.append(("tracemalloc peak", f"{traced_peak:.0f} MB", "", None))
    # An empty CF- group grants nothing and is not recorded as a virtual group.
    counts_ok = counts["virtual_groups"] == sizes["virtual_groups_with_members"] and counts["members"] == sizes["members"]
    rows.append(("scan complete", "yes" if counts_ok else "NO: counts differ from the seed", "", counts_ok))
    ok = print_table(rows, "vgmigrate scan benchmark (sandbox in its own process, zero latency)")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(35)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
