"""`export --format terraform`: the files parse as HCL, match the Cloudflare provider's schema
(its v5.22.0 documentation pages, copied into tests/schemas/terraform-provider-cloudflare/),
import every object the run made with the import id the provider's docs give, name only ids the
account has, and say exactly what Cloudflare returns now (so `terraform plan` has nothing to change).

The HCL parser is python-hcl2 (a test dependency): a pure-Python HCL2 parser, so the files are
read by something other than the code that wrote them.
"""

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from account_strategies import accounts
from migrate import iam, terraform
from migrate.cli import cli
from migrate.cloudflare import CloudflareClient
from migrate.demo import IDP_STEPS, STEPS
from migrate.sandbox import Sandbox
from migrate.sandbox.authentik import AuthentikSandbox
from migrate.sandbox.seeds import demo_seed

DOCS = Path(__file__).resolve().parent / "schemas" / "terraform-provider-cloudflare"
META_ARGUMENTS = {"lifecycle", "depends_on", "count", "for_each", "provider"}  # Terraform's own, in every resource


# ---- the provider's schema, read from its documentation ---------------------------------------------------------


def provider_schema(kind, page):
    """{path: {"required", "optional", "read_only"}} and the import id template of one docs page.
    "" is the top level, "policies.permission_groups" a nested list's elements."""
    text = (DOCS / page).read_text()
    assert f"# {kind} (" in text
    schema, path, section = {}, None, None
    for line in text.splitlines():
        if line == "## Schema":
            path = ""
        elif m := re.match(r"### Nested Schema for `([\w.]+)`", line):
            path = m[1]
        elif path is not None and (m := re.match(r"(?:### )?(Required|Optional|Read-Only):?$", line)):
            section = m[1].lower().replace("-", "_")
        elif path is not None and section and (m := re.match(r"- `(\w+)` \(", line)):
            schema.setdefault(path, {"required": set(), "optional": set(), "read_only": set()})[section].add(m[1])
        elif line.startswith("## Import"):
            path = None
    found = re.search(rf"terraform import {kind}\.example '([^']+)'", text)
    return schema, found[1] if found else None


SCHEMAS = {
    ("resource", "cloudflare_user_group"): provider_schema("cloudflare_user_group", "resources--user_group.md"),
    ("resource", "cloudflare_user_group_members"): provider_schema("cloudflare_user_group_members", "resources--user_group_members.md"),
    ("data", "cloudflare_resource_group"): provider_schema("cloudflare_resource_group", "data-sources--resource_group.md"),
}


def test_the_schema_copies_read_as_the_provider_documents_them():
    """The reader itself: a wrong parse would make every schema check below vacuous."""
    schema, import_format = SCHEMAS[("resource", "cloudflare_user_group")]
    assert schema[""]["required"] == {"account_id", "name"} and schema[""]["optional"] == {"policies"}
    assert schema["policies"]["required"] == {"access", "permission_groups", "resource_groups"}
    assert schema["policies.permission_groups"]["required"] == {"id"}
    assert import_format == "<account_id>/<user_group_id>"
    members, import_format = SCHEMAS[("resource", "cloudflare_user_group_members")]
    assert members[""]["required"] == {"account_id", "members", "user_group_id"} and members["members"]["required"] == {"id"}
    assert import_format == "<account_id>/<user_group_id>"
    data, _ = SCHEMAS[("data", "cloudflare_resource_group")]
    assert data[""]["required"] == {"account_id", "resource_group_id"}


def schema_problems(body, schema, path=""):
    """Every required attribute missing and every attribute the schema does not let a
    configuration set (unknown, or read-only), at any depth."""
    spec = schema[path]
    keys = {k for k in body if not k.startswith("__")} - (META_ARGUMENTS if not path else set())
    problems = [f"{path or 'top'}: missing {k}" for k in sorted(spec["required"] - keys)]
    problems += [f"{path or 'top'}: {k} is {'read-only' if k in spec['read_only'] else 'unknown'}"
                 for k in sorted(keys - spec["required"] - spec["optional"])]
    for key in keys:
        nested = f"{path}.{key}" if path else key
        if nested in schema:
            for element in body[key]:
                problems += schema_problems(element, schema, nested)
    return problems


# ---- reading HCL back ---------------------------------------------------------------------------------------------


def unquote(value):
    """The string an HCL quoted literal (as python-hcl2 returns it) stands for."""
    assert isinstance(value, str) and value.startswith('"') and value.endswith('"'), value
    text, out, i = value[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(text):
        if text[i] == "\\":
            code = text[i + 1]
            if code in simple:
                out.append(simple[code])
                i += 2
            else:
                width = 4 if code == "u" else 8
                out.append(chr(int(text[i + 2:i + 2 + width], 16)))
                i += 2 + width
        elif text.startswith("$${", i) or text.startswith("%%{", i):
            out.append(text[i + 1:i + 3])
            i += 3
        else:
            assert not text.startswith(("${", "%{"), i), f"a template in {value}"
            out.append(text[i])
            i += 1
    return "".join(out)


def parse(folder):
    """{"resource": {(type, name): body}, "data": {...}, "import": [...], "variable": {...}, "terraform": [...]} of every .tf file."""
    out = {"resource": {}, "data": {}, "import": [], "variable": {}, "terraform": []}
    for path in sorted(folder.glob("*.tf")):
        doc = hcl2.loads(path.read_text(encoding="utf-8"))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        key = (unquote(rtype), unquote(name))
                        assert key not in out[kind], f"{kind} {key} declared twice"
                        out[kind][key] = body
        out["import"] += doc.get("import", [])
        out["terraform"] += doc.get("terraform", [])
        for block in doc.get("variable", []):
            out["variable"].update({unquote(k): v for k, v in block.items()})
    return out


def ref(value):
    """`${a.b.c}` -> "a.b.c" (a reference), else None."""
    return value[2:-1] if isinstance(value, str) and value.startswith("${") and value.endswith("}") else None


def value_of(value, tf):
    """A string attribute's value: a literal, the account variable's default, or the id the
    account-wide resource group data source is given."""
    if ref(value) == f"var.{terraform.ACCOUNT_VARIABLE}":
        return unquote(tf["variable"][terraform.ACCOUNT_VARIABLE]["default"])
    if ref(value) == f"data.cloudflare_resource_group.{terraform.RESOURCE_GROUP_LABEL}.id":
        return unquote(tf["data"][("cloudflare_resource_group", terraform.RESOURCE_GROUP_LABEL)]["resource_group_id"])
    return unquote(value)


# ---- runs against the sandbox -------------------------------------------------------------------------------------


def run_steps(base, steps, paths, until="apply"):
    """Run the demo's own steps (its command lines) up to and including `until`."""
    for title, _, args in steps:
        result = CliRunner().invoke(cli, base + [a.format(**paths) for a in args])
        assert result.exit_code == 0, (title, result.output)
        if title == until:
            return


def export_tf(base, out, *extra):
    return CliRunner().invoke(cli, base + ["export", "--format", "terraform", "--out", str(out), *extra])


def live_view(sb):
    """What the account has now, read over the API as the provider reads it."""
    client = CloudflareClient.connect(sb.base_url, sb.token, sb.account_id)
    groups = {g["id"]: g for g in client.user_groups()}
    return {
        "groups": groups,
        "members": {gid: [m["id"] for m in client.user_group_members(gid)] for gid in groups},
        "member_ids": {m["id"] for m in client.members()},
        "permission_groups": {pg["id"] for pg in client.permission_groups()},
        "resource_groups": {rg["id"]: rg for rg in client.resource_groups()},
    }


def made_by_run(db):
    """(run id, {User Group ids the run created or adopted}, resource group id it made or None), from the journal."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        run = con.execute("select id from runs where kind = 'apply' order by started_at desc limit 1").fetchone()[0]
        rows = con.execute("select kind, object_id from actions where run_id = ? and status = 'done'", [run]).fetchall()
    finally:
        con.close()
    groups = {oid for kind, oid in rows if kind in ("create_user_group", "adopt_user_group", "sync_idp_group")}
    made_rg = next((oid for kind, oid in rows if kind == "create_resource_group"), None)
    return run, groups, made_rg


def check_export(folder, sb, db, idp=False):
    """Everything the issue promises of the files; returns the parsed files."""
    tf = parse(folder)
    live = live_view(sb)
    account = sb.account_id
    assert unquote(tf["variable"][terraform.ACCOUNT_VARIABLE]["default"]) == account
    provider = tf["terraform"][0]["required_providers"][0]["cloudflare"]
    assert unquote(provider["source"]) == "cloudflare/cloudflare"

    # The schema: every block of a type the provider documents, nothing required missing, nothing unknown.
    for kind in ("resource", "data"):
        for (rtype, name), body in tf[kind].items():
            assert (kind, rtype) in SCHEMAS, f"{kind} {rtype} is not one the export should write"
            assert schema_problems(body, SCHEMAS[(kind, rtype)][0]) == [], (rtype, name)
            assert value_of(body["account_id"], tf) == account

    # Imports: one per resource, in the provider's documented id format, for the very group.
    targets = [ref(i["to"]) for i in tf["import"]]
    assert sorted(targets) == sorted(f"{t}.{n}" for t, n in tf["resource"]) and len(set(targets)) == len(targets)
    imported = {}
    for block in tf["import"]:
        rtype, name = ref(block["to"]).split(".")
        template = SCHEMAS[("resource", rtype)][1]
        pattern = "^" + re.escape(template).replace(re.escape("<account_id>"), "(?P<account>[0-9a-f]{32})").replace(
            re.escape("<user_group_id>"), "(?P<group>[0-9a-f]{32})") + "$"
        m = re.match(pattern, unquote(block["id"]))
        assert m and m["account"] == account, block
        imported[(rtype, name)] = m["group"]
    for (rtype, name), gid in imported.items():
        if rtype == "cloudflare_user_group_members":
            assert ref(tf["resource"][(rtype, name)]["user_group_id"]) == f"cloudflare_user_group.{name}.id"
            assert imported[("cloudflare_user_group", name)] == gid

    # Every object the run made is named, and every id is one the account has.
    _, made, made_rg = made_by_run(db)
    groups = {gid: name for (rtype, name), gid in imported.items() if rtype == "cloudflare_user_group"}
    assert made <= set(groups) and set(groups) <= set(live["groups"])
    rg_id = unquote(tf["data"][("cloudflare_resource_group", terraform.RESOURCE_GROUP_LABEL)]["resource_group_id"])
    assert iam.is_account_wide(live["resource_groups"][rg_id], account)
    if made_rg:
        assert rg_id == made_rg

    # Each resource says exactly what Cloudflare returns, in its order: nothing for a plan to change.
    for gid, name in groups.items():
        body, now = tf["resource"][("cloudflare_user_group", name)], live["groups"][gid]
        assert unquote(body["name"]) == now["name"]
        written = [(unquote(p["access"]), [value_of(x["id"], tf) for x in p["permission_groups"]],
                    [value_of(x["id"], tf) for x in p["resource_groups"]]) for p in body.get("policies", [])]
        assert written == [(p["access"], [x["id"] for x in p["permission_groups"]], [x["id"] for x in p["resource_groups"]])
                           for p in now["policies"]]
        assert {pg for _, pgs, _ in written for pg in pgs} <= live["permission_groups"]
        assert {rg for _, _, rgs in written for rg in rgs} <= set(live["resource_groups"])
        data_ref = f"data.cloudflare_resource_group.{terraform.RESOURCE_GROUP_LABEL}.id"
        assert all(ref(x["id"]) == data_ref for p in body.get("policies", []) for x in p["resource_groups"] if value_of(x["id"], tf) == rg_id)
        members = tf["resource"].get(("cloudflare_user_group_members", name))
        if idp:
            assert members is None and body["lifecycle"][0]["ignore_changes"] == ["name"]
        else:
            assert [unquote(m["id"]) for m in members["members"]] == live["members"][gid]
            assert set(live["members"][gid]) <= live["member_ids"]
    return tf


def test_after_the_demos_apply_the_export_names_every_object_the_run_made(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        db = tmp_path / "vgmigrate.db"
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        run_steps(base, STEPS, {"plan": str(tmp_path / "plan.json")})
        result = export_tf(base, tmp_path / "tf")
        assert result.exit_code == 0, result.output
        assert "6 User Group(s)" in result.output and "12 import block(s)" in result.output
        tf = check_export(tmp_path / "tf", sb, db)
        adopted = tf["resource"][("cloudflare_user_group", "administrator_read_only")]
        assert len(adopted["policies"]) == 2  # the group's own zone policy is kept beside the migrated one
        text = "".join(p.read_text() for p in (tmp_path / "tf").glob("*"))
        assert sb.token not in text
        assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == sorted(terraform.FILES)

        # A second export writes the same files: names and order are stable.
        again = export_tf(base, tmp_path / "tf2")
        assert again.exit_code == 0
        for name in terraform.FILES:
            assert (tmp_path / "tf" / name).read_text() == (tmp_path / "tf2" / name).read_text()

        # Someone changes a group after the run: the export says what is there now.
        gid = next(iter(made_by_run(db)[1]))
        CloudflareClient.connect(sb.base_url, sb.token, sb.account_id).replace_user_group_members(gid, [])
        assert export_tf(base, tmp_path / "tf3").exit_code == 0
        check_export(tmp_path / "tf3", sb, db)

        # Someone deletes one: the export refuses rather than hand Terraform a group to create again.
        CloudflareClient.connect(sb.base_url, sb.token, sb.account_id).delete_user_group(gid)
        deleted = export_tf(base, tmp_path / "tf5")
        assert deleted.exit_code == 1 and "no longer in the account" in deleted.output and not (tmp_path / "tf5").exists()

        # Rolled back: nothing to hand over, one line, nothing written.
        assert CliRunner().invoke(cli, base + ["rollback", "--yes", "--force"]).exit_code == 0
        gone = export_tf(base, tmp_path / "tf4")
        assert gone.exit_code == 1 and "rolled back" in gone.output and "Traceback" not in gone.output
        assert not (tmp_path / "tf4").exists()


def without_account_wide_resource_groups(seed):
    """The demo account with its account-wide resource groups narrowed to one zone, so the run makes one."""
    seed = copy.deepcopy(seed)
    for rg in seed["resource_groups"]:
        scope = rg["scope"][0] if isinstance(rg["scope"], list) else rg["scope"]
        if [o["key"] for o in scope["objects"]] == ["*"]:
            scope["objects"] = [{"key": "com.cloudflare.api.account.zone.0123456789abcdef0123456789abcdef"}]
    return seed


def test_a_resource_group_the_run_made_is_the_one_exported(tmp_path):
    with Sandbox(seed=without_account_wide_resource_groups(demo_seed()), rate_limit=None) as sb:
        db = tmp_path / "v.db"
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        for args in (["scan"], ["plan", "--on-existing", "suffix", "--out", str(tmp_path / "p.json")], ["apply", str(tmp_path / "p.json"), "--yes"]):
            assert CliRunner().invoke(cli, base + args).exit_code == 0, args
        assert made_by_run(db)[2], "the run should have made the resource group"
        result = export_tf(base, tmp_path / "tf")
        assert result.exit_code == 0, result.output
        check_export(tmp_path / "tf", sb, db)
        assert "(made by run" in (tmp_path / "tf" / "user_groups.tf").read_text()


def test_idp_mode_writes_only_the_policies_and_leaves_members_to_the_idp(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb, AuthentikSandbox(cloudflare=sb) as ak:
        db = tmp_path / "v.db"
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url,
                "--authentik-url", ak.base_url, "--authentik-token", ak.token]
        run_steps(base, IDP_STEPS, {"plan": str(tmp_path / "plan.json"), "source": "authentik"})
        result = export_tf(base, tmp_path / "tf")
        assert result.exit_code == 0, result.output
        assert "members left to the IdP" in result.output
        tf = check_export(tmp_path / "tf", sb, db, idp=True)
        assert not any(rtype == "cloudflare_user_group_members" for rtype, _ in tf["resource"])
        assert "Authentik owns these groups" in (tmp_path / "tf" / "user_groups.tf").read_text()


# A third of the profile's accounts: each is a whole scan, plan and apply (about 0.2 s).
@settings(max_examples=max(1, settings().max_examples // 3), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=accounts(), mode=st.sampled_from(["adopt", "suffix"]))
def test_every_generated_account_exports_what_it_has(tmp_path_factory, seed, mode):
    """Over accounts of every shape (odd group names, adopted groups with other policies, several
    account-wide resource groups or none): the export keeps every promise check_export checks."""
    tmp = tmp_path_factory.mktemp("tf")
    with Sandbox(seed=copy.deepcopy(seed), rate_limit=None) as sb:
        db = tmp / "v.db"
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        assert CliRunner().invoke(cli, base + ["scan"]).exit_code == 0
        planned = CliRunner().invoke(cli, base + ["plan", "--out", str(tmp / "p.json"), "--on-existing", mode, "--allow-no-break-glass"])
        assume(planned.exit_code == 0 and json.loads((tmp / "p.json").read_text())["steps"])  # a refused or empty plan has no run
        assert CliRunner().invoke(cli, base + ["apply", str(tmp / "p.json"), "--yes"]).exit_code == 0
        result = export_tf(base, tmp / "tf")
        assert result.exit_code == 0, result.output
        check_export(tmp / "tf", sb, db)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    with Sandbox(seed=demo_seed(), rate_limit=None) as sb:
        db = tmp_path / "v.db"
        base = ["--db", str(db), "--account", sb.account_id, "--token", sb.token, "--base-url", sb.base_url]
        none_yet = export_tf(base, tmp_path / "a")
        assert none_yet.exit_code == 1 and "no plan has been applied" in none_yet.output
        unknown = export_tf(base, tmp_path / "b", "--run", "apply-nope")
        assert unknown.exit_code == 1 and "history" in unknown.output
        no_token = CliRunner().invoke(cli, ["--db", str(db), "--account", sb.account_id, "--base-url", sb.base_url,
                                            "export", "--format", "terraform", "--out", str(tmp_path / "c")], env={"CLOUDFLARE_API_TOKEN": ""})
        assert no_token.exit_code == 2 and "token" in no_token.output
        both = export_tf(base, tmp_path / "d", "--with-audit-log")
        assert both.exit_code == 2 and "--with-audit-log" in both.output
        (tmp_path / "e").write_text("not a folder")
        a_file = export_tf(base, tmp_path / "e")  # click's own usage error
        assert a_file.exit_code == 2 and "is a file" in a_file.output and "Traceback" not in a_file.output
        for result in (none_yet, unknown, no_token, both):
            assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not any((tmp_path / n).exists() for n in "abcd")


# ---- the pure parts ---------------------------------------------------------------------------------------------------


@given(st.text())
def test_any_name_reads_back_exactly_from_its_hcl_literal(name):
    doc = hcl2.loads(f"x = {terraform.hcl_string(name)}\n")
    assert unquote(doc["x"]) == name


@given(st.lists(st.tuples(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), st.text(max_size=30)),
                unique_by=lambda g: g[0]))
def test_terraform_names_are_valid_unique_and_do_not_depend_on_order(groups):
    names = terraform.labels(groups)
    assert set(names) == {gid for gid, _ in groups}
    assert len(set(names.values())) == len(groups)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", n) for n in names.values())
    assert terraform.labels(list(reversed(groups))) == names
    for gid, name in groups:  # a name that clashes with no other keeps its plain form
        if sum(terraform.slug(n) == terraform.slug(name) for _, n in groups) == 1 and names[gid] != terraform.slug(name):
            assert names[gid].startswith(terraform.slug(name) + "_")


def test_names_follow_the_group_names():
    assert terraform.labels([("a" * 32, "Super Administrator - All Privileges"), ("b" * 32, "DNS"), ("c" * 32, "2FA admins"),
                             ("d" * 32, "Zürich Ops"), ("e" * 32, "dns ")]) == {
        "a" * 32: "super_administrator_all_privileges", "b" * 32: "dns_bbbbbbbb", "c" * 32: "group_2fa_admins",
        "d" * 32: "zurich_ops", "e" * 32: "dns_eeeeeeee"}


def sample_export(members=2, idp=False, name='Ops "blue" ${x}'):
    pg = {"id": "1" * 32, "name": "DNS"}
    group = terraform.Group(id="a" * 32, name=name, how="created by run r1",
                            policies=[{"id": "p" * 32, "access": "allow", "permission_groups": [pg], "resource_groups": [{"id": "r" * 32, "name": "All"}]}],
                            members=None if idp else [(f"{n:032x}", f"user{n}@example.com") for n in range(members)])
    return terraform.Export(account_id="c" * 32, account_name="Acme\nCorp", run_id="r1", plan_id="f" * 64,
                            resource_group={"id": "r" * 32, "name": "All", "made": False}, groups=[group], idp=idp)


def test_a_group_larger_than_the_provider_reads_is_called_out():
    small = terraform.render(sample_export(members=terraform.PROVIDER_MEMBERS_READ))["user_groups.tf"]
    large = terraform.render(sample_export(members=terraform.PROVIDER_MEMBERS_READ + 1))["user_groups.tf"]
    assert "reads the first 100 only" not in small and "101 members" in large and "reads the first 100 only" in large
    hcl2.loads(large)  # the note is a comment, not a syntax error
    assert "Acme Corp" in large  # a newline in the account name stays on its comment line


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_itself_reads_the_files_as_formatted(tmp_path):
    """Where Terraform is installed: its own parser accepts the files and `terraform fmt` would
    change nothing (the layout is the canonical one)."""
    for n, export in enumerate((sample_export(), sample_export(idp=True), sample_export(name="a\tb\u2028c %{d} \\e"))):
        folder = tmp_path / str(n)
        folder.mkdir()
        for name, text in terraform.render(export).items():
            (folder / name).write_text(text, encoding="utf-8")
        done = subprocess.run(["terraform", "fmt", "-check", "-diff", "."], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        parsed = parse(folder)
        assert unquote(parsed["resource"][("cloudflare_user_group", terraform.slug(export.groups[0].name))]["name"]) == export.groups[0].name


def test_policies_are_written_as_the_provider_reads_them_back():
    """An empty policy list is `[]` in state and a missing one null: either written otherwise is a change."""
    export = sample_export()
    export.groups[0].policies = []
    body = hcl2.loads(terraform.render(export)["user_groups.tf"])["resource"][0]['"cloudflare_user_group"']
    assert next(iter(body.values()))["policies"] == []
    export.groups[0].policies = None
    body = hcl2.loads(terraform.render(export)["user_groups.tf"])["resource"][0]['"cloudflare_user_group"']
    assert "policies" not in next(iter(body.values()))


def test_the_generated_files_carry_no_provider_block_for_credentials():
    files = terraform.render(sample_export())
    assert not any(re.search(r'^\s*provider\s+"cloudflare"', text, re.M) for text in files.values())
    assert json.dumps(files).count("api_token") == 0
