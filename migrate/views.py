"""Read-only SQL views with human names over the inventory, so the SQLite file is pleasant to open
in any SQLite browser (Datasette, DB Browser), and so reports and exports share one definition of
each table they show. Every view keeps scan_id / run_id / plan_id columns for filtering.

Columns are a contract: exports and auditors' saved queries rely on their names.
"""

from sqlite_utils.db import quote_identifier

from .runs import DONE, FAILED, PENDING, UNDONE
from .steps import kinds_where


def sql_list(names):
    """Names as an SQL list for `in` (they are vgmigrate's own step kinds, never user input)."""
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


GRANT_OUTCOME = f"""case a.status when '{DONE}' then 'granted' when '{UNDONE}' then 'rolled back' when '{FAILED}' then 'failed'
    else 'outcome unknown' end as outcome"""
SEVERITY_RANK = "case {col} when 'critical' then 0 when 'error' then 1 when 'warning' then 2 when 'info' then 3 else 4 end"

VIEWS = {
    # One row per scan: what it saw, at a glance.
    "scan_overview": """
select
  s.id as scan_id, s.account_id, s.account_name, s.source, s.started_at, s.finished_at,
  (select count(*) from virtual_groups v where v.scan_id = s.id) as virtual_groups,
  (select count(*) from virtual_groups v where v.scan_id = s.id and v.resolution = 'resolved') as resolved_roles,
  (select count(*) from virtual_group_members l where l.scan_id = s.id) as memberships,
  (select count(*) from members m where m.scan_id = s.id) as account_members,
  (select count(*) from user_groups u where u.scan_id = s.id) as user_groups,
  (select count(*) from findings f where f.scan_id = s.id and f.severity in ('critical', 'error')) as serious_findings,
  (select count(*) from findings f where f.scan_id = s.id) as findings
from scans s
order by s.id""",
    # Each virtual group, the role its name carries, and how (or whether) it resolved.
    "vg_overview": """
select
  v.scan_id, v.name as virtual_group, v.role, v.resolution, v.method as resolved_by,
  v.permission_group_name as permission_group, v.permission_group_id,
  (select count(*) from virtual_group_members l where l.scan_id = v.scan_id and l.virtual_group_id = v.id) as members,
  (select count(*) from virtual_group_members l
     where l.scan_id = v.scan_id and l.virtual_group_id = v.id and l.member_id is null) as not_account_members,
  v.variants as name_variants, v.account_id, v.resolution_message as note, v.id as virtual_group_id
from virtual_groups v
order by v.scan_id, v.role""",
    # Who has what through virtual groups: one row per member per virtual group.
    "member_access": """
select
  l.scan_id, l.email, l.member_id, coalesce(l.member_status, 'not an account member') as member_status,
  v.name as virtual_group, v.role, v.permission_group_name as permission_group, v.resolution
from virtual_group_members l
left join virtual_groups v on v.scan_id = l.scan_id and v.id = l.virtual_group_id
order by l.scan_id, l.email, v.role""",
    # Account members as scanned.
    "account_members": """
select
  m.scan_id, m.email, m.status, m.id as member_id, m.user_id,
  (select group_concat(case r.type when 'object' then json_extract(r.value, '$.name') else r.value end, ', ')
     from json_each(m.roles) r) as roles
from members m
order by m.scan_id, m.email""",
    # What each account member held on the whole account when scanned, and through what: a legacy
    # role, an own policy, a User Group, or a virtual group (the legacy role its CF- group gives).
    # permission_group is today's name (a renamed role under its new one), held_as the name it is
    # held under. "Who held Administrator before and after" is one query over two scans (README).
    "effective_access": """
select
  h.scan_id, s.finished_at as scanned_at, h.email, h.member_id, m.status as member_status,
  h.permission_group, h.held_as, h.through, h.via
from held_access h
join scans s on s.id = h.scan_id
left join members m on m.scan_id = h.scan_id and m.id = h.member_id
order by h.scan_id, h.email, h.permission_group, h.through, h.via""",
    # User Groups that existed when scanned, and whether vgmigrate manages them.
    "user_group_overview": """
select
  u.scan_id, u.name as user_group, u.id as user_group_id, json_array_length(u.policies) as policies,
  exists(select 1 from actions a join runs r on r.id = a.run_id
         where r.kind = 'apply' and a.object_id = u.id and a.status = '{done}'
           and a.kind in {managed}) as managed_by_vgmigrate
from user_groups u
order by u.scan_id, u.name""".format(done=DONE, managed=sql_list(kinds_where(lambda k: k.vgmigrate_manages))),
    "findings_report": f"""
select f.scan_id, f.severity, f.code, f.subject, f.message, f.action as what_to_do, f.seq
from findings f
order by f.scan_id, {SEVERITY_RANK.format(col="f.severity")}, f.seq""",
    "plan_overview": """
select
  p.id as plan_id, p.created_at, p.account_id, p.scan_id, p.mode,
  json_extract(cast(p.body as text), '$.options.on_existing') as on_existing,
  json_extract(cast(p.body as text), '$.options.name_template') as name_template,
  json_array_length(cast(p.body as text), '$.groups') as user_groups,
  json_array_length(cast(p.body as text), '$.skipped') as not_migrated,
  json_array_length(cast(p.body as text), '$.findings') as findings,
  p.steps,
  (select count(*) from runs r where r.plan_id = p.id and r.kind = 'apply') as apply_runs
from plans p
order by p.created_at""",
    # One row per planned User Group, with the virtual groups it replaces (one per line).
    "plan_groups": """
select
  p.id as plan_id, json_extract(g.value, '$.step') as step, json_extract(g.value, '$.name') as user_group,
  json_extract(g.value, '$.action') as action, json_extract(g.value, '$.permission_group.name') as permission_group,
  json_extract(g.value, '$.permission_group.id') as permission_group_id,
  json_array_length(g.value, '$.members') as members,
  (select group_concat(json_extract(v.value, '$.name'), char(10)) from json_each(g.value, '$.virtual_groups') v) as virtual_groups,
  json_extract(g.value, '$.existing_id') as existing_user_group_id
from plans p, json_each(cast(p.body as text), '$.groups') g
order by p.created_at, g.key""",
    # Each rehearsal of a plan on a private sandbox replica (apply, verify, rollback) before approval.
    "plan_rehearsals": """
select
  h.plan_id, h.at, case when h.passed then 'passed' else 'failed' end as result,
  h.apply as apply_status, h.apply_calls, h.differences, h.rollback as rollback_status,
  case when h.restored then 'yes' else 'no' end as state_restored
from rehearsals h
order by h.at""",
    "run_overview": f"""
select
  r.id as run_id, r.kind, r.status, r.plan_id, r.undoes, r.account_id, r.started_at, r.finished_at,
  count(a.seq) as steps,
  coalesce(sum(a.status = '{DONE}'), 0) as done,
  coalesce(sum(a.status = '{FAILED}'), 0) as failed,
  coalesce(sum(a.status = '{PENDING}'), 0) as pending,
  coalesce(sum(a.status = '{UNDONE}'), 0) as rolled_back,
  r.message
from runs r left join actions a on a.run_id = r.id
group by r.id
order by r.started_at, r.id""",
    # The journal: every write vgmigrate sent, what came back, and how to undo it.
    "journal": """
select
  a.run_id, r.kind as run_kind, a.seq, a.step, a.kind as action, a.target, a.method, a.path,
  a.http_status, a.cf_ray, a.status as outcome, a.error, a.object_id,
  a.started_at, a.finished_at, a.undone_at, a.undo_note, a.request, a.inverse, a.response
from actions a left join runs r on r.id = a.run_id
order by a.started_at, a.run_id, a.seq""",
    # Who got which access, when, and why: one row per member added to a User Group by an apply,
    # one per member who was already in a User Group that an apply adopted (they gain its role), and
    # in IdP mode one per member of a synced group when its policy was attached (the grant itself).
    "access_grants": """
select
  a.run_id, a.seq, r.plan_id, coalesce(a.finished_at, a.started_at) as granted_at,
  coalesce(
    (select json_extract(x.value, '$.email') from json_each(g.value, '$.members') x
      where json_extract(x.value, '$.id') = m.value),
    (select mm.email from members mm where mm.id = m.value order by mm.scan_id desc limit 1)
  ) as email,
  m.value as member_id, a.target as user_group, a.object_id as user_group_id,
  json_extract(g.value, '$.permission_group.name') as permission_group,
  (select group_concat(json_extract(v.value, '$.name'), char(10)) from json_each(g.value, '$.virtual_groups') v) as because_of,
  {outcome},
  a.undone_at as rolled_back_at
from actions a
join runs r on r.id = a.run_id and r.kind = 'apply'
join json_each(a.request, '$.members') m
left join plans p on p.id = r.plan_id
left join json_each(cast(p.body as text), '$.steps') s on json_extract(s.value, '$.id') = a.step
left join json_each(cast(p.body as text), '$.groups') g on json_extract(g.value, '$.step') = json_extract(s.value, '$.group')
where a.kind in {to_request}
union all
select
  a.run_id, a.seq, r.plan_id, coalesce(a.finished_at, a.started_at) as granted_at,
  json_extract(x.value, '$.email') as email, json_extract(x.value, '$.id') as member_id,
  a.target as user_group, a.object_id as user_group_id,
  json_extract(g.value, '$.permission_group.name') as permission_group,
  'already in the adopted User Group' as because_of,
  {outcome},
  a.undone_at as rolled_back_at
from actions a
join runs r on r.id = a.run_id and r.kind = 'apply'
join plans p on p.id = r.plan_id
join json_each(cast(p.body as text), '$.steps') s on json_extract(s.value, '$.id') = a.step
join json_each(cast(p.body as text), '$.groups') g on json_extract(g.value, '$.step') = json_extract(s.value, '$.group')
join json_each(g.value, '$.gains') x
where a.kind in {to_gains}
union all
select
  a.run_id, a.seq, r.plan_id, coalesce(a.finished_at, a.started_at) as granted_at,
  json_extract(x.value, '$.email') as email, json_extract(x.value, '$.id') as member_id,
  a.target as user_group, a.object_id as user_group_id,
  json_extract(g.value, '$.permission_group.name') as permission_group,
  (select group_concat(json_extract(v.value, '$.name'), char(10)) from json_each(g.value, '$.virtual_groups') v) as because_of,
  {outcome},
  a.undone_at as rolled_back_at
from actions a
join runs r on r.id = a.run_id and r.kind = 'apply'
join plans p on p.id = r.plan_id
join json_each(cast(p.body as text), '$.steps') s on json_extract(s.value, '$.id') = a.step
join json_each(cast(p.body as text), '$.groups') g on json_extract(g.value, '$.step') = json_extract(s.value, '$.group')
join json_each(g.value, '$.members') x
where a.kind in {to_group}
order by granted_at, run_id, seq, email""".format(
        outcome=GRANT_OUTCOME, **{f"to_{whom}": sql_list(kinds_where(lambda k, w=whom: k.grants_to == w)) for whom in ("request", "gains", "group")}),
}


def ensure(db):
    """Create or update every view (sqlite_utils Database); a view whose SQL is unchanged is left
    alone, so opening the inventory stays cheap and does not take a write lock needlessly."""
    current = {name: db[name].schema for name in db.view_names()}
    stale = {name: sql for name, sql in VIEWS.items() if current.get(name) != f"CREATE VIEW {quote_identifier(name)} AS {sql}"}
    if not stale:
        return
    with db.atomic():
        for name, sql in stale.items():
            db.create_view(name, sql, replace=True)
