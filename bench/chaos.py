"""Chaos run: migrate generated accounts on a misbehaving sandbox while apply and rollback are
killed with SIGKILL at random moments, and check after every seed that nothing was lost.

Per seed: a generated account (about 200 virtual groups) is scanned and planned; `vgmigrate apply`
runs as a child process against a sandbox injecting 5xx, dropped responses, held-then-dropped
connections (latency spikes) and 429s, and is SIGKILLed at a random moment and started again until
it finishes; then `verify`; then `rollback`, under the same faults and kills. Checked per seed:
- the account ends exactly as a clean apply of the plan leaves it (no duplicate groups or members),
  and after rollback exactly as it started;
- every journal row marked done names an object that exists (after apply);
- after every write the sandbox accepted, nobody had less access than at the start and nobody
  gained a role the plan does not list (AccessWatch, the sandbox's own access rules).

    python bench/chaos.py                      # 100 seeds (about 40 minutes on two cores)
    python bench/chaos.py --seeds 5 --start 40 # a short run
    python bench/chaos.py --replay 17          # one seed, with every step printed
    python bench/chaos.py --idp --seeds 5      # the IdP-managed path through Authentik: apply, cutover, rollback
    python bench/chaos.py --idp okta --seeds 5 # ... through Okta (or entra)

With `--idp` the migration goes through the Authentik emulator, which pushes to the misbehaving
sandbox from its worker, late (0.05 to 0.6 s), in any order, retrying what fails: apply, verify,
cutover and rollback are each killed at random and run again until they finish. Checked per seed:
verify is clean after apply and after the cutover, rollback leaves Cloudflare's IAM, every
member's legacy roles and Authentik's groups exactly as they started, and AccessWatch finds no
violation after any write.
"""

import argparse
import importlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from engine_support import iam_state  # noqa: E402
from migrate import planfile  # noqa: E402
from migrate.cloudflare import CloudflareClient  # noqa: E402
from migrate.executor import apply_plan  # noqa: E402
from migrate.inventory import Inventory  # noqa: E402
from migrate.sandbox import Sandbox  # noqa: E402
from migrate.demo import IDP_SANDBOXES  # noqa: E402
from migrate.sandbox.seeds import generate_seed  # noqa: E402
from migrate.sandbox.watch import AccessWatch  # noqa: E402


def cli(sb, db, *args, kill_after=None, log=None, ak=None):
    """Run vgmigrate in a child process; SIGKILL it after `kill_after` seconds. Returns the exit
    code, or None when it was killed before it finished."""
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": sb.token, "CLOUDFLARE_ACCOUNT_ID": sb.account_id,
           "CLOUDFLARE_BASE_URL": sb.base_url, "VGMIGRATE_DB": str(db)}
    if ak is not None:
        env.update(ak.environment())
    proc = subprocess.Popen([sys.executable, "-m", "migrate", *map(str, args)], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if log:
            log(f"  {args[0]}: killed after {kill_after:.2f} s")
        return None
    if log:
        log(f"  {args[0]}: exit {proc.returncode}: {out.strip().splitlines()[-1] if out.strip() else ''}")
    return proc.returncode


def until_exit_0(sb, db, args, rnd, stats, log, attempts=30, ak=None):
    for _ in range(attempts):
        kill_after = rnd.uniform(0.05, 1.5) if rnd.random() < 0.6 else None
        code = cli(sb, db, *args, kill_after=kill_after, log=log, ak=ak)
        if code is None:
            stats["kills"] += 1
        elif code == 0:
            return True
    return False


def journal_consistent(db, live_group_ids):
    inventory = Inventory(db)
    try:
        run = inventory.runs("apply")[-1]
        return all(a["object_id"] in live_group_ids for a in inventory.actions(run["id"])
                   if a["status"] == "done" and a["kind"] == "create_user_group")
    finally:
        inventory.close()


def one_seed(seed, groups, members, log):
    rnd = random.Random(seed)
    account = generate_seed(groups=groups, members=members, random_seed=seed)
    stats = {"kills": 0, "faults": 0, "violations": [], "problems": []}
    with tempfile.TemporaryDirectory(prefix="vgmigrate-chaos-") as tmp:
        tmp = Path(tmp)
        db, plan_path = tmp / "inv.db", tmp / "plan.json"
        with Sandbox(seed=account, rate_limit=None) as ref:
            before = iam_state(ref)
            if cli(ref, db, "scan") != 0 or cli(ref, db, "plan", "--out", plan_path, "--on-existing", "suffix") != 0:
                stats["problems"].append("scan or plan failed on a quiet sandbox")
                return stats
            plan = planfile.read(plan_path)
            ref_db = tmp / "ref.db"
            with sqlite3.connect(db) as a, sqlite3.connect(ref_db) as b:
                a.backup(b)
            apply_plan(CloudflareClient.connect(ref.base_url, ref.token, ref.account_id), Inventory(ref_db), plan, parallel=8)
            planned = iam_state(ref)
        with Sandbox(seed=account, rate_limit=(400, 2), fail_5xx=0.01, lose_responses=0.01, timeouts=0.005,
                     timeout_seconds=0.3, random_seed=seed) as sb:
            watch = AccessWatch(sb, plan)
            if not until_exit_0(sb, db, ["apply", plan_path, "--yes", "--parallel", "8"], rnd, stats, log):
                stats["problems"].append("apply never finished")
            elif iam_state(sb) != planned:
                stats["problems"].append("after apply the account is not exactly the plan")
            elif not journal_consistent(db, set(sb.state.user_groups)):
                stats["problems"].append("a journal row marked done names a group that does not exist")
            if not stats["problems"] and cli(sb, db, "verify", log=log) != 0:
                # verify reads under faults too; one more try tells a fault from drift
                if cli(sb, db, "verify", log=log) != 0:
                    stats["problems"].append("verify found differences")
            if not until_exit_0(sb, db, ["rollback", "--yes"], rnd, stats, log):
                stats["problems"].append("rollback never finished")
            elif iam_state(sb) != before:
                stats["problems"].append("after rollback the account is not as it started")
            watch.stop()
            stats["violations"] = watch.violations
            stats["checks"] = watch.checks
            stats["faults"] = sum(1 for _, _, status in sb.calls if status is None or status == 429 or (status or 0) >= 500)
    return stats


def legacy_roles(sb):
    with sb.state.lock:
        return {m["id"]: sorted(m["roles"]) for m in sb.state.snapshot()["members"]}


def idp_sandbox(source, sb, seed):
    """The IdP's emulator, pushing late and out of order."""
    module, name = IDP_SANDBOXES[source]
    options = {"push_delay": (0.05, 0.6), "retry_backoff": 0.3} if source == "authentik" else {}
    return getattr(importlib.import_module(module), name)(cloudflare=sb, random_seed=seed, **options)


def one_seed_idp(seed, groups, members, log, source="authentik"):
    """The IdP-managed path under faults and kills, with the IdP pushing late and out of order."""
    rnd = random.Random(seed)
    account = generate_seed(groups=groups, members=members, random_seed=seed)
    stats = {"kills": 0, "faults": 0, "violations": [], "problems": []}
    with tempfile.TemporaryDirectory(prefix="vgmigrate-chaos-idp-") as tmp:
        db, plan_path = Path(tmp) / "inv.db", Path(tmp) / "plan.json"
        with Sandbox(seed=account, rate_limit=(400, 2), fail_5xx=0.01, lose_responses=0.01, timeouts=0.005,
                     timeout_seconds=0.3, random_seed=seed) as sb, \
                idp_sandbox(source, sb, seed) as ak:
            before = (iam_state(sb), legacy_roles(sb), ak.group_members())
            if not until_exit_0(sb, db, ["scan"], rnd, stats, log, ak=ak) or \
                    not until_exit_0(sb, db, ["plan", "--mode", "idp", "--out", plan_path, "--on-existing", "suffix"], rnd, stats, log, ak=ak):
                stats["problems"].append("scan or plan never finished")
                return stats
            watch = AccessWatch(sb, planfile.read(plan_path))
            for step in (["apply", plan_path, "--yes"], ["verify"], ["cutover", "--yes"], ["verify"], ["rollback", "--yes"]):
                if not until_exit_0(sb, db, step, rnd, stats, log, ak=ak):
                    stats["problems"].append(f"{step[0]} never finished")
                    break
            ak.settle(timeout=120)  # anything the IdP still retries must change nothing
            after = (iam_state(sb), legacy_roles(sb), ak.group_members())
            if not stats["problems"]:
                for what, a, b in zip(("Cloudflare IAM", "legacy roles", f"{ak.name} groups"), before, after):
                    if a != b:
                        stats["problems"].append(f"after rollback, {what} are not as they started")
            watch.stop()
            stats["violations"], stats["checks"] = watch.violations, watch.checks
            stats["faults"] = sum(1 for _, _, status in sb.calls if status is None or status == 429 or (status or 0) >= 500)
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--replay", type=int, help="run this one seed and print every step")
    parser.add_argument("--idp", nargs="?", const="authentik", choices=sorted(IDP_SANDBOXES),
                        help="the IdP-managed path through this IdP's emulator (default authentik)")
    args = parser.parse_args()
    seeds = [args.replay] if args.replay is not None else list(range(args.start, args.start + args.seeds))
    log = print if args.replay is not None else None
    started, totals, failing = time.monotonic(), {"kills": 0, "faults": 0, "violations": 0, "checks": 0}, []
    for seed in seeds:
        stats = one_seed_idp(seed, args.groups, args.members, log, args.idp) if args.idp else one_seed(seed, args.groups, args.members, log)
        for key in totals:
            totals[key] += len(stats[key]) if key == "violations" else stats.get(key, 0)
        if stats["problems"] or stats["violations"]:
            failing.append((seed, stats["problems"] + stats["violations"][:3]))
        print(f"seed {seed}: {stats['kills']} kills, {stats['faults']} faults, "
              f"{len(stats['violations'])} violations {'; '.join(stats['problems'])}", file=sys.stderr)
    rows = [
        ["seeds run", len(seeds)],
        ["accounts", f"{args.groups} virtual groups, {args.members} members each"],
        ["faults injected (5xx, dropped, 429)", totals["faults"]],
        ["path", f"IdP-managed ({args.idp} emulator, late pushes)" if args.idp else "API"],
        ["kills (SIGKILL of a command)", totals["kills"]],
        ["access checks after writes", totals["checks"]],
        ["invariant violations", totals["violations"]],
        ["seeds with a problem", len(failing)],
        ["wall", f"{time.monotonic() - started:.0f} s"],
    ]
    print(tabulate(rows, tablefmt="github"))
    if failing:
        seed, problems = failing[0]
        print(f"\nfirst failing seed {seed}: {'; '.join(problems)}")
        print(f"replay: python bench/chaos.py --replay {seed} --groups {args.groups} --members {args.members}{f' --idp {args.idp}' if args.idp else ''}")
        sys.exit(1)
    print(f"\nreproduce: python bench/chaos.py --seeds {args.seeds} --start {args.start} --groups {args.groups} --members {args.members}"
          + (f" --idp {args.idp}" if args.idp else ""))


if __name__ == "__main__":
    main()
