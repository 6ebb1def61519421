"""Regenerate the golden report files (and, with --plan, the fixture plan they are rendered from).

    python tests/golden/regenerate.py          # golden Markdown from fixtures/plan-demo.json
    python tests/golden/regenerate.py --plan   # first re-make the fixture plan from the demo seed

The same as `VGMIGRATE_UPDATE_GOLDEN=1 python -m pytest tests/test_approval.py`. Review the diff
before committing: a golden file is a statement of what the approver reads.
"""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PLAN = ROOT / "fixtures" / "plan-demo.json"
GOLDEN = Path(__file__).resolve().parent
# Fixed so the fixture (and its plan id) does not change with the day it is regenerated.
CREATED_AT = "2026-01-15T09:00:00.000Z"
REHEARSAL = {"passed": True, "calls": 16, "at": "2026-01-15T09:05:00.000Z"}


def make_fixture_plan():
    """Scan the demo sandbox account and plan it with the real planner (adopting the taken name)."""
    from migrate import planfile
    from migrate.inventory import Inventory
    from migrate.planner import PlanOptions, build_plan
    from migrate.sandbox import Sandbox
    from migrate.sandbox.seeds import demo_seed
    from migrate.cloudflare import CloudflareClient
    from migrate.scan import run_scan

    with tempfile.TemporaryDirectory() as tmp, Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        inventory = Inventory(Path(tmp) / "inventory.db")
        client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id)
        scan_id, _, _ = run_scan(client, inventory, source="cloudflare")
        plan = build_plan(inventory.load_scan(scan_id), PlanOptions(on_existing="adopt"), inventory.own_groups())
        inventory.close()
    planfile.write(planfile.seal(plan, created_at=CREATED_AT), FIXTURE_PLAN)


def golden_files():
    """{golden file name: text it must contain}, rendered from the fixture plan."""
    from migrate import approval

    plan = json.loads(FIXTURE_PLAN.read_text(encoding="utf-8"))
    return {
        "plan-demo.md": approval.render(plan, "markdown", plan_path="plan-demo.json"),
        "plan-demo-rehearsed.md": approval.render(plan, "markdown", rehearsal=REHEARSAL, plan_path="plans/2026 Q1.json"),
    }


def write_golden():
    for name, text in golden_files().items():
        (GOLDEN / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if "--plan" in sys.argv:
        make_fixture_plan()
    write_golden()
