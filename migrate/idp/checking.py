"""What every `idp check` shares, whatever the IdP: the report (findings over the facts read), a
step of `--fix`, and the journaled run that carries the fix steps out (`rollback --run` undoes it).
The checks themselves are per IdP: `check.py` (Authentik), `okta_check.py`, `entra_check.py`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import VgmigrateError
from ..executor import JournaledRun
from ..runs import DONE
from ..steps import kind_of


@dataclass
class Report:
    facts: object  # the check's Facts: has as_json()
    findings: list

    @property
    def problems(self):
        return [f for f in self.findings if f.severity in ("critical", "error")]

    @property
    def ok(self):
        return not self.problems

    def as_json(self):
        return {"ok": self.ok, **self.facts.as_json(), "findings": [f.as_row() for f in self.findings]}


@dataclass
class FixStep:
    id: str
    kind: str  # a step kind in steps.setup or steps.okta
    target: str
    request: dict  # "$idp.provider" stands for the pk of the provider that step creates
    inverse: dict | None
    description: str


class IdpFix(JournaledRun):
    kind = "idp_fix"
    resume = "run `vgmigrate idp check --fix` again to finish, or `vgmigrate rollback --run <this run>`"


def run_fix(cf_client, inventory, steps):
    """Carry out the fix steps, one after the other, in one journaled `idp_fix` run. Returns the
    run (its `ids` name what the steps made); a one-line error at the first step that fails."""
    ordered = [{**kind_of(s.__dict__).build(s.id, s.target, s.request, s.inverse), "after": [steps[n - 1].id] if n else []}
               for n, s in enumerate(steps)]
    fix = IdpFix(cf_client, inventory, ordered)
    result = fix.run()
    if result.status != DONE:
        raise VgmigrateError(f"idp fix run {result.run_id} stopped: {result.message}")
    return fix, result.run_id


def host_of(url):
    """The host of a URL, lower-cased ("" if none): a provider pointing near the account's endpoint."""
    return (urlsplit(str(url or "")).hostname or "").lower()
