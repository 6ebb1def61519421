"""`export --format terraform`: the User Groups a run made, handed to Terraform as code.

Teams that manage Cloudflare with Terraform keep only what their configuration declares. This
writes, for one apply run, the resources as the Cloudflare provider's documentation writes them
and one Terraform 1.5+ `import` block per object, so the first `terraform plan` imports them and
shows no change. Written against provider v5.22.0 (tag commit a2efdc5786ae9726d56928dbfe91933bd92404ca):

- `cloudflare_user_group`: account_id, name, policies [{access, permission_groups [{id}],
  resource_groups [{id}]}]; import id `<account_id>/<user_group_id>`.
- `cloudflare_user_group_members`: account_id, user_group_id, members [{id}] (account member ids);
  import id `<account_id>/<user_group_id>`.
- Resource groups have only a data source (`cloudflare_resource_group`, by resource_group_id):
  the account-wide one is read as data and the policies refer to it; Terraform cannot manage it.

Terraform compares the configuration with what the provider reads, lists included in their order,
so the files are written from the objects as Cloudflare returns them now (read live, the order
kept), not from the plan. Which objects: the run's journal and plan say. The token is never in
them (no provider block is written: the provider reads CLOUDFLARE_API_TOKEN itself).
"""

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, iam
from .cloudflare import run_parallel
from .errors import VgmigrateError
from .export import write_file
from .runs import DONE, PARTLY_UNDONE, UNDONE, apply_run
from .steps import CreateResourceGroup, is_kind
from .verify import live_group_ids

PROVIDER_SOURCE = "cloudflare/cloudflare"
PROVIDER_VERSION = "5.22.0"  # the schema and docs these files follow
PROVIDER_CONSTRAINT = "~> 5.22"  # 5.22 first turns an empty member list into [] rather than null
# The provider reads a group's members with one request at the API's default page size, so a
# group with more members shows a change it cannot settle.
PROVIDER_MEMBERS_READ = 100
ACCOUNT_VARIABLE = "cloudflare_account_id"
RESOURCE_GROUP_LABEL = "account_wide"
FILES = ("user_groups.tf", "imports.tf", "variables.tf", "versions.tf")

# How a run came by each plan group's User Group (the plan's `action`).
HOW = {
    "create": "created by run {run}",
    "adopt": "adopted by run {run} (it existed before; its earlier policies and members are kept)",
    "update": "created by an earlier run; run {run} added members",
    "none": "created by an earlier run; run {run} changed nothing in it",
}
HOW_IDP = "created in Authentik by run {run} and pushed to Cloudflare over SCIM"


@dataclass
class Group:
    """A User Group as it stands now, and what the export says of it."""

    id: str
    name: str
    policies: list | None  # as read: [{id, access, permission_groups [{id, name}], resource_groups [{id, ...}]}]
    members: list | None  # [(member id, email)] as listed; None when the IdP owns them
    how: str
    label: str = ""


@dataclass
class Export:
    account_id: str
    account_name: str
    run_id: str
    plan_id: str
    resource_group: dict  # {id, name, made: bool}
    groups: list = field(default_factory=list)
    idp: bool = False
    files: dict = field(default_factory=dict)  # name -> text

    def summary_line(self, out_dir):
        owned = " (members left to the IdP)" if self.idp else ""
        return (f"wrote {len(self.groups)} User Group(s){owned} and {import_count(self)} import block(s) of run {self.run_id} "
                f"to {out_dir}; next: cd {out_dir} && terraform init && terraform plan")


# ---- what the run made (inventory only) ---------------------------------------------------------------------


def run_objects(inventory, run_id=None):
    """(run, plan, [(plan group, User Group id)], resource group {id, name, made}) of an apply run
    that finished: the objects it created, adopted or found made by an earlier run of the plan."""
    run = apply_run(inventory, run_id)
    if run["status"] in (UNDONE, PARTLY_UNDONE):
        raise VgmigrateError(f"run {run['id']} was rolled back, so its User Groups are not there to hand to Terraform; "
                             "export a run whose changes are live (`vgmigrate history` lists them)")
    if run["status"] != DONE:
        raise VgmigrateError(f"run {run['id']} is {run['status']}, not done; finish it first (`vgmigrate apply` with the same plan), "
                             "then export it")
    plan = inventory.plan_body(run["plan_id"])
    if plan is None:
        raise VgmigrateError(f"the plan of run {run['id']} is not in this inventory; export from the inventory that applied it")
    ids = live_group_ids(plan, inventory, run["id"])
    groups = [(g, ids.get(g["step"])) for g in plan["groups"] if g.get("action") != "conflict"]
    rg = dict(plan["resource_group"])
    if rg.get("id"):
        rg["made"] = False
    else:  # the run made it: the journal has its id
        made = [a for a in inventory.actions(run["id"], response=False) if is_kind(a, CreateResourceGroup) and a["status"] == DONE]
        rg = {"id": made[-1]["object_id"] if made else None, "name": made[-1]["request"]["name"] if made else None, "made": True}
    return run, plan, groups, rg


# ---- the objects now (Cloudflare) -----------------------------------------------------------------------------


def read_live(client, plan, groups, rg, run_id, parallel=None):
    """The run's User Groups and resource group as Cloudflare has them now, in its order."""
    idp = plan["options"].get("mode") == "idp"
    live = {g["id"]: g for g in client.user_groups()}
    rgs = {r["id"]: r for r in client.resource_groups()}
    missing = [g["name"] for g, gid in groups if gid not in live]
    if missing:
        raise VgmigrateError(f"User Group {missing[0]!r} of run {run_id} is no longer in the account ({len(missing)} missing); "
                             "`vgmigrate verify` shows what changed")
    if rg["id"] not in rgs or not iam.is_account_wide(rgs[rg["id"]], client.account_id):
        raise VgmigrateError(f"the account-wide resource group {rg['id']} of run {run_id} is no longer in the account; "
                             "`vgmigrate verify` shows what changed")
    rg = {**rg, "name": rgs[rg["id"]].get("name")}
    gids = [gid for _, gid in groups]
    members = [None] * len(gids) if idp else run_parallel(
        lambda gid: [(m["id"], m.get("email")) for m in client.user_group_members(gid)], gids, parallel or client.parallel)
    out = []
    for (group, gid), listed in zip(groups, members):
        g = live[gid]
        how = HOW_IDP if idp and group.get("action") == "create" else HOW.get(group.get("action"), "migrated by run {run}")
        text = how.format(run=run_id)
        out.append(Group(id=gid, name=g["name"], policies=g.get("policies"), members=listed, how=text))
    return rg, out, idp


# ---- HCL (pure) -----------------------------------------------------------------------------------------------


def hcl_string(text):
    """A quoted HCL string literal that reads back as exactly `text`: quotes, backslashes and
    control or invisible characters escaped, and `${` / `%{` doubled so they are not templates."""
    out = []
    for ch in str(text):
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out).replace("${", "$${").replace("%{", "%%{") + '"'


def comment(text):
    """Text safe on one `#` comment line."""
    return " ".join("".join(ch if unicodedata.category(ch)[0] not in "CZ" else " " for ch in str(text or "")).split())


_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(name):
    """A Terraform name from a group name: ASCII letters, digits and underscores, starting with a letter."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    word = _NOT_WORD.sub("_", ascii_name.lower()).strip("_")
    return word if word[:1].isalpha() else ("group_" + word).rstrip("_")


def labels(groups):
    """{group id: Terraform name} from each (id, name): stable (a group keeps its Terraform name
    while it keeps its own) and unique (groups whose names read the same get the first characters
    of their ids added, which depend on nothing else in the export)."""
    by_slug = {}
    for gid, name in groups:
        by_slug.setdefault(slug(name), []).append(gid)
    out = {gid: word if len(gids) == 1 else f"{word}_{gid[:8].lower()}" for word, gids in by_slug.items() for gid in gids}
    seen = {}
    for gid, label in out.items():
        seen.setdefault(label, []).append(gid)
    for label, gids in seen.items():  # a name that reads like another's suffixed one: whole ids
        if len(gids) > 1:
            out.update({gid: f"{slug(name)}_{gid.lower()}" for gid, name in groups if gid in gids})
    return out


def _attrs(pairs, indent):
    """`name = value` lines with the values aligned, as `terraform fmt` writes them."""
    width = max(len(k) for k, _ in pairs)
    return [f"{indent}{k.ljust(width)} = {v}" for k, v in pairs]


def _objects(key, items, indent):
    """`key = [{ id = ... # note }, { ... }]` in the layout of the provider's documentation."""
    if not items:
        return [f"{indent}{key} = []"]
    lines = [f"{indent}{key} = [{{"]
    for n, (value, note) in enumerate(items):
        if n:
            lines.append(f"{indent}  }}, {{")  # where `terraform fmt` puts it
        lines.append(f"{indent}  id = {value}" + (f" # {note}" if note else ""))
    lines.append(f"{indent}}}]")
    return lines


def _policies(policies, rg_id, indent):
    # The provider keeps what the API returns: an empty list is `[]`, a missing one null (left out).
    if policies is None:
        return []
    if not policies:
        return [f"{indent}policies = []"]
    lines = [f"{indent}policies = [{{"]
    for n, policy in enumerate(policies):
        if n:
            lines.append(f"{indent}  }}, {{")
        inner = indent + "  "
        lines.append(f"{inner}access = {hcl_string(policy.get('access', 'allow'))}")
        pgs = [(hcl_string(pg["id"]), comment(pg.get("name"))) for pg in policy.get("permission_groups") or []]
        rgs = [(f"data.cloudflare_resource_group.{RESOURCE_GROUP_LABEL}.id", comment(rg.get("name")) or None) if rg["id"] == rg_id
               else (hcl_string(rg["id"]), comment(rg.get("name"))) for rg in policy.get("resource_groups") or []]
        lines += _objects("permission_groups", pgs, inner)
        lines += _objects("resource_groups", rgs, inner)
    lines.append(f"{indent}}}]")
    return lines


def user_groups_tf(export):
    rg = export.resource_group
    head = [
        f"# The User Groups of vgmigrate run {export.run_id} (plan {export.plan_id[:12]}), account "
        f"{comment(export.account_name) or export.account_id} ({export.account_id}).",
        f"# Written by vgmigrate {__version__} for the Cloudflare provider's schema at v{PROVIDER_VERSION}. Next, in this folder:",
        "# `terraform init` and `terraform plan`: the plan should import every object in imports.tf and change nothing.",
    ]
    if export.idp:
        head += [
            "#",
            "# Authentik owns these groups: it pushes their names and members to Cloudflare over SCIM, and Cloudflare",
            "# lets the API change only their policies. So no cloudflare_user_group_members is written, the name is",
            "# there because the schema requires it (changes to it are ignored), and Terraform may not delete them.",
        ]
    lines = head + [
        "",
        f"# The account-wide resource group the policies use ({'made' if rg['made'] else 'reused'} by run {export.run_id}).",
        "# The provider has no resource for resource groups, only this data source: Terraform reads it, and it stays outside Terraform.",
        f'data "cloudflare_resource_group" "{RESOURCE_GROUP_LABEL}" {{',
        *_attrs([("account_id", f"var.{ACCOUNT_VARIABLE}"), ("resource_group_id", hcl_string(rg["id"]))], "  "),
        "}",
    ]
    for g in export.groups:
        lines += ["", f"# {comment(g.name)}: {g.how}.", f'resource "cloudflare_user_group" "{g.label}" {{',
                  *_attrs([("account_id", f"var.{ACCOUNT_VARIABLE}"), ("name", hcl_string(g.name))], "  ")]
        lines += _policies(g.policies, rg["id"], "  ")
        if export.idp:
            lines += ["", "  lifecycle {", *_attrs([("ignore_changes", "[name]"), ("prevent_destroy", "true")], "    "), "  }"]
        lines.append("}")
        if g.members is not None:
            if len(g.members) > PROVIDER_MEMBERS_READ:
                lines += [f"# {len(g.members)} members: provider v{PROVIDER_VERSION} reads the first {PROVIDER_MEMBERS_READ} only, "
                          "so `terraform plan` will show the rest as a change here."]
            lines += ["", f'resource "cloudflare_user_group_members" "{g.label}" {{',
                      *_attrs([("account_id", f"var.{ACCOUNT_VARIABLE}"), ("user_group_id", f"cloudflare_user_group.{g.label}.id")], "  ")]
            lines += _objects("members", [(hcl_string(mid), comment(email)) for mid, email in g.members], "  ")
            lines.append("}")
    return "\n".join(lines) + "\n"


def import_id(account_id, group_id):
    """The import id of both User Group resources, as the provider's import docs give it."""
    return f"{account_id}/{group_id}"


def imports_tf(export):
    lines = ["# Terraform 1.5+ adopts these existing objects on the next `terraform apply`; `terraform plan` lists them as imports.",
             "# The ids are literal because Terraform 1.5 allows nothing else; once imported, this file may be deleted."]
    for g in export.groups:
        kinds = ["cloudflare_user_group"] + ([] if g.members is None else ["cloudflare_user_group_members"])
        for kind in kinds:
            lines += ["", "import {", *_attrs([("to", f"{kind}.{g.label}"), ("id", hcl_string(import_id(export.account_id, g.id)))], "  "), "}"]
    return "\n".join(lines) + "\n"


def import_count(export):
    return sum(1 if g.members is None else 2 for g in export.groups)


def variables_tf(export):
    return "\n".join([
        f'variable "{ACCOUNT_VARIABLE}" {{',
        *_attrs([("type", "string"), ("description", hcl_string("The Cloudflare account the User Groups belong to.")),
                 ("default", hcl_string(export.account_id))], "  "),
        "}",
    ]) + "\n"


def versions_tf(export):
    return "\n".join([
        "# Leave this file out if your configuration already declares the cloudflare provider.",
        "terraform {",
        '  required_version = ">= 1.5.0" # import blocks',
        "  required_providers {",
        "    cloudflare = {",
        *_attrs([("source", hcl_string(PROVIDER_SOURCE)), ("version", hcl_string(PROVIDER_CONSTRAINT))], "      "),
        "    }",
        "  }",
        "}",
    ]) + "\n"


def render(export):
    """The four files' text. Pure."""
    names = labels([(g.id, g.name) for g in export.groups])
    for g in export.groups:
        g.label = names[g.id]
    return {"user_groups.tf": user_groups_tf(export), "imports.tf": imports_tf(export),
            "variables.tf": variables_tf(export), "versions.tf": versions_tf(export)}


# ---- the command ----------------------------------------------------------------------------------------------


def export_terraform(inventory, client, out_dir, run_id=None, secrets=()):
    """Write the Terraform files of an apply run (default: the latest) into out_dir; returns the Export."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VgmigrateError(f"--out {out} is a file; give a directory (it is created if missing)")
    run, plan, groups, rg = run_objects(inventory, run_id)
    if plan["account"]["id"] != client.account_id:
        raise VgmigrateError(f"run {run['id']} belongs to account {plan['account']['id']}, not {client.account_id}; "
                             f"pass --account {plan['account']['id']}")
    rg, live, idp = read_live(client, plan, groups, rg, run["id"])
    export = Export(account_id=client.account_id, account_name=plan["account"].get("name") or "", run_id=run["id"],
                    plan_id=run["plan_id"], resource_group=rg, groups=live, idp=idp)
    export.files = render(export)
    for name, text in export.files.items():
        if any(s and s in text for s in secrets):
            raise VgmigrateError(f"refusing to write {name}: it would contain the API token")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VgmigrateError(f"cannot create {out}: {err.strerror}; choose a writable --out directory") from None
    for name, text in export.files.items():
        write_file(out / name, text.encode("utf-8"))
    return export
