"""Plan <-> JSON file. The plan id is the sha256 of the canonical JSON of everything else, so any
edit to the content (not to whitespace) is detected, and handing the file to `apply` is the approval."""

import hashlib
import json
from pathlib import Path

from . import __version__
from .errors import VgmigrateError
from .codec import dumps_chunks, loads_shared, utcnow

# A plan of 100,000 members is tens of megabytes of JSON, which need never be held whole to hash,
# record or write it.
_PRETTY = json.JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)


def content_hash(plan):
    body = {k: v for k, v in plan.items() if k != "plan_id"}
    digest = hashlib.sha256()
    for chunk in dumps_chunks(body):
        digest.update(chunk.encode())
    return digest.hexdigest()


def seal(plan, created_at=None):
    """Stamp tool version and time, then the content hash."""
    plan = {**plan, "tool": f"vgmigrate {__version__}", "created_at": created_at or utcnow()}
    plan["plan_id"] = content_hash(plan)
    return plan


def inventory_row(plan):
    """The plans table row that records a written plan (apply and verify read it back)."""
    return {"id": plan["plan_id"], "created_at": plan["created_at"], "account_id": plan["account"]["id"],
            "scan_id": plan["scan"]["id"], "mode": plan["options"]["mode"], "steps": len(plan["steps"]),
            "body": plan}  # save_plan writes its canonical JSON


def pretty_chunks(plan):
    """The plan file's JSON (indented, keys sorted) piece by piece."""
    return _PRETTY.iterencode(plan)


def write(plan, path):
    with open(path, "w", encoding="utf-8") as out:
        for chunk in pretty_chunks(plan):
            out.write(chunk)
        out.write("\n")


def read(path):
    """Load a plan file and refuse it if it was edited since it was written."""
    try:
        plan = loads_shared(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise VgmigrateError(f"cannot read plan {path}: {err.strerror}; check the path, or make one with `vgmigrate plan --out`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VgmigrateError(f"{path} is not a vgmigrate plan (invalid JSON: {err}); make one with `vgmigrate plan --out`") from None
    if not isinstance(plan, dict) or "plan_id" not in plan or "steps" not in plan:
        raise VgmigrateError(f"{path} is not a vgmigrate plan; make one with `vgmigrate plan --out`")
    if content_hash(plan) != plan["plan_id"]:
        raise VgmigrateError(
            f"{path} was modified after it was written (its content no longer matches plan id "
            f"{plan['plan_id'][:12]}); make a new plan with `vgmigrate plan --out` and have it approved again"
        )
    if plan.get("format") != 1:
        newer = isinstance(plan.get("format"), int) and plan["format"] > 1
        raise VgmigrateError(
            f"{path} has plan format {plan.get('format')!r} ({plan.get('tool') or 'unknown tool'}); this vgmigrate reads format 1: "
            + ("upgrade vgmigrate to apply it" if newer else "make a new plan with `vgmigrate plan --out`")
        )
    return plan
