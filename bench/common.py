"""Shared by the benchmarks: a sandbox in its own process, seed sizes, minimal page counts, tables.

The sandbox runs in a child process so that its CPU time, threads and memory never count as the
tool's: the benchmark process holds only vgmigrate.
"""

import compileall
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]

# Largest per_page of each list endpoint (openapi-subset.json), written out here on purpose: the
# minimum must not be derived from the client it judges.
PAGE_SIZES = {
    "permission_groups": 50,
    "members": 50,
    "user_groups": 500,
    "scim": 100,
}


def compile_bytecode():
    """Compile vgmigrate's modules, as installing a package does: with PYTHONDONTWRITEBYTECODE set
    (as on some CI machines) every process would otherwise compile them again, and start-up and
    CPU figures would measure the compiler."""
    compileall.compile_dir(REPO / "migrate", quiet=1)


def pages(count, per_page):
    """Calls to list `count` objects: one per full or partial page, and one for an empty list."""
    return max(1, math.ceil(count / per_page))


@contextmanager
def sandbox_process(groups, members, latency_ms=0, random_seed=0, rate_limit=None):
    """`vgmigrate sandbox serve --generate` in a child process; yields (base_url, account_id, token).

    rate_limit: "REQUESTS/SECONDS" (e.g. "1200/3": Cloudflare's limit with time scaled 100x), or
    None for no limit."""
    command = [
        sys.executable, "-m", "migrate", "sandbox", "serve",
        "--generate", f"{groups},{members}", "--random-seed", str(random_seed),
        "--port", "0", "--latency-ms", str(latency_ms),
        *(["--rate-limit", rate_limit] if rate_limit else ["--no-rate-limit"]),
    ]
    # stderr to a file, not a pipe: nobody reads it while the benchmark runs, and a full pipe would
    # stall the sandbox.
    errors = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        base_url = re.search(r"listening on (\S+)", text)
        account = re.search(r"account: ([0-9a-f]{32})", text)
        token = re.search(r"token:\s+(\S+)", text)
        if not (base_url and account and token):
            proc.kill()
            proc.wait()
            errors.seek(0)
            raise SystemExit(f"the sandbox did not start:\n{errors.read()}")
        yield base_url.group(1), account.group(1), token.group(1)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: `serve` stops cleanly
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.close()


_SIZES_SCRIPT = """
import json, sys
from migrate.sandbox.seeds import generate_seed
seed = generate_seed(int(sys.argv[1]), int(sys.argv[2]), random_seed=int(sys.argv[3]))
member_emails = {m["email"].lower() for m in seed["members"]}
filled = {g for u in seed["scim_users"] if u["userName"].lower() in member_emails for g in u["groups"]}
print(json.dumps({
    **{key: len(value) for key, value in seed.items() if isinstance(value, list)},
    "virtual_groups_with_members": len(filled),
    "account_wide_resource_groups": sum(
        rg["scope"]["key"] == "com.cloudflare.api.account." + seed["account"]["id"] for rg in seed["resource_groups"]
    ),
}))
"""


def scan_minimum(sizes):
    """The fewest calls a scan of the seed can make: token check, account read, every list at its
    largest page, resource groups in one call, and one member listing per existing User Group (a
    plan may adopt it; the seed's hold fewer than a page)."""
    ugs = sizes["user_groups"]
    return (
        2
        + pages(sizes["permission_groups"], PAGE_SIZES["permission_groups"])
        + pages(sizes["members"], PAGE_SIZES["members"])
        + 1
        + pages(ugs, PAGE_SIZES["user_groups"])
        # Cloudflare's SCIM Groups lists the virtual groups and every user group (a custom SCIM group).
        + pages(sizes["scim_groups"] + ugs, PAGE_SIZES["scim"])
        + pages(sizes["scim_users"], PAGE_SIZES["scim"])
        + ugs
    )


def seed_sizes(groups, members, random_seed=0):
    """Object counts of the generated seed, computed in a child process (the seed stays out of ours)."""
    out = subprocess.run(
        [sys.executable, "-c", _SIZES_SCRIPT, str(groups), str(members), str(random_seed)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def print_table(rows, title):
    """rows: (figure, value, target or "", ok or None). Returns whether every target was met."""
    # Timings are only as good as the machine is quiet: show how busy it was.
    rows = [*rows, ("load average (1 min)", f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", "", None)]
    print(f"\n{title}")
    print(tabulate(
        [(name, value, target, "" if ok is None else ("ok" if ok else "MISSED")) for name, value, target, ok in rows],
        headers=("figure", "value", "target", ""),
        tablefmt="github",
    ))
    return all(ok is not False for *_, ok in rows)
