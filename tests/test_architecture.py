"""The package's shape, read from its source (the AST of migrate/): imports run one way, and each
domain word is spelled in its one home (see the map in migrate/__init__.py)."""

import ast
import re
from pathlib import Path

import pytest

from migrate.steps import KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "migrate"


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name):
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def imported(name, node, known):
    """The migrate modules an import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    elif node.level == 0:
        targets = [node.module] if node.module else []
        targets += [f"{node.module}.{a.name}" for a in node.names]
    else:
        base = name.split(".") if is_package(name) else name.split(".")[:-1]
        base = ".".join(base[: len(base) - node.level + 1])
        here = f"{base}.{node.module}" if node.module else base
        targets = [here] + [f"{here}.{a.name}" for a in node.names]
    found = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        parts = target.split(".")
        # Loading a module runs the packages above it first (but for one inside that package).
        for n in range(2, len(parts) + 1):
            outer = ".".join(parts[:n])
            if not name.startswith(outer + ".") and outer != name:
                found.add(outer)
    return found - {"migrate"}


def import_graph():
    known = modules()
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        graph[name] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for t in imported(name, node, known) if t.startswith("migrate")}
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_two_modules_import_each_other_directly_or_in_a_circle():
    # Imports inside functions count too: hiding one there does not break the circle.
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def function_imports(tree):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("migrate")):
                    yield node


def test_an_import_inside_a_function_is_only_for_start_up_time_and_says_so():
    """A module may load its own modules late only to keep `vgmigrate --help` fast, and its
    source says so once (a comment naming start-up time)."""
    lazy = {name for name, path in modules().items() if any(function_imports(ast.parse(path.read_text())))}
    unexplained = {name for name in lazy if "start-up" not in modules()[name].read_text()}
    assert unexplained == set()


def strings(tree):
    """Every string constant but docstrings."""
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def spelled(words, home):
    """(module, line, string) of each string constant outside `home` that spells one of `words`."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words))) + r")\b")
    return [(name, line, text) for name, path in modules().items() if not any(name.startswith(h) for h in home)
            for line, text in strings(ast.parse(path.read_text())) if pattern.search(text)]


def test_no_step_kind_is_spelled_outside_the_steps_package():
    # The sandbox keeps its own copies of everything, as the oracle.
    assert spelled(KINDS, home=("migrate.steps", "migrate.sandbox")) == []


@pytest.mark.parametrize("source", ['x = "add_members"', 'sql = "where a.kind in (\'sync_idp_group\')"'])
def test_a_kind_spelled_in_a_string_is_seen(source):
    pattern = re.compile(r"\b(" + "|".join(KINDS) + r")\b")
    assert any(pattern.search(text) for _, text in strings(ast.parse(source)))


def test_no_module_calls_another_modules_private_method():
    """`x._name(...)` only for a method the same module defines: a private method is its module's business."""
    calls = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("_")
                    and not node.func.attr.startswith("__") and node.func.attr not in own
                    and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("self", "cls"))):
                calls.append((name, node.lineno, ast.unparse(node.func)))
    assert calls == []


STATUSES = {"pending", "running", "done", "failed", "interrupted", "rolled_back", "partly_rolled_back", "nothing_to_do",
            "partial", "dry_run"}
SQL_STATUS = re.compile(r"\bstatus\s*(?:=|!=|in|when)\s*\(?\s*'(" + "|".join(STATUSES) + r")'")


def _is_status(node):
    """An expression that holds a run's or a journal row's status (or a journal row's outcome)."""
    return ((isinstance(node, ast.Name) and node.id == "status") or (isinstance(node, ast.Attribute) and node.attr == "status")
            or (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in ("status", "outcome")))


def _spells_status(node):
    if isinstance(node, ast.Constant):
        return node.value in STATUSES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_spells_status(e) for e in node.elts)
    if isinstance(node, ast.IfExp):
        return _spells_status(node.body) or _spells_status(node.orelse)
    return False


def status_strings(tree):
    """Lines where a status is spelled as a string: compared, assigned, passed or written in SQL."""
    for node in ast.walk(tree):
        hits = []
        if isinstance(node, ast.Compare) and any(map(_is_status, [node.left, *node.comparators])):
            hits = [node.left, *node.comparators]
        elif isinstance(node, ast.keyword) and node.arg == "status":
            hits = [node.value]
        elif isinstance(node, ast.Assign) and any(_is_status(t) for t in node.targets):
            hits = [node.value]
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
            hits = [v for t, v in zip(node.targets[0].elts, node.value.elts) if _is_status(t)]
        elif isinstance(node, ast.Dict):
            hits = [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "status"]
        elif isinstance(node, ast.Call) and ((isinstance(node.func, ast.Name) and node.func.id == "RunResult")
                                            or (isinstance(node.func, ast.Attribute) and node.func.attr == "journal_update")):
            hits = node.args
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_STATUS.search(node.value):
            yield node.lineno
        if any(_spells_status(h) for h in hits):
            yield node.lineno


def test_no_status_is_spelled_outside_runs():
    found = [(name, line) for name, path in modules().items() if name != "migrate.runs" and not name.startswith("migrate.sandbox")
             for line in status_strings(ast.parse(path.read_text()))]
    assert found == []


@pytest.mark.parametrize("source", [
    'if run["status"] == "done": pass', 'x = a.status in ("done", "pending")', 'inv.update_run(r, status="failed")',
    'status, message = "done", "ok"', 'inv.journal_update(r, 1, "pending")', 'RunResult(None, "nothing_to_do")',
    'row = {"status": "running"}', 'sql = "select 1 from actions where status = \'done\'"',
    'inv.update_run(r, status=DONE if ok else "failed")',
])
def test_a_spelled_status_is_seen(source):
    assert list(status_strings(ast.parse(source)))


def test_a_member_status_or_a_status_constant_is_not_a_run_status():
    assert not list(status_strings(ast.parse('ok = m.get("status") == "pending" or run["status"] == DONE')))


def test_the_package_docstring_maps_every_module():
    import migrate

    doc = migrate.__doc__
    top = {name.split(".")[1] for name in modules() if name.count(".") >= 1}
    assert sorted(m for m in top if not re.search(rf"\b{m}\b", doc)) == []
