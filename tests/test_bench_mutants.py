"""bench/mutants.py: a mutant that no longer applies to today's code fails the bench, never drops
out of the score (else "42/42" would quietly become "39/39")."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_mutants", ROOT / "bench" / "mutants.py")
mutants = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutants)


def test_a_mutant_whose_code_moved_is_stale_and_nothing_runs(tmp_path, monkeypatch):
    (tmp_path / "rule.py").write_text("return allowed and not denied\n")
    monkeypatch.setattr(mutants, "pytest", lambda *a, **k: pytest.fail("no test should run for a stale mutant"))
    moved = mutants.m("X1", "deny", "rule.py", "return allowed and not denied_here", "return allowed", "tests/x.py")
    outcome, detail, _ = mutants.run_mutant(tmp_path, moved)
    assert outcome == "STALE" and "found 0 times" in detail
    assert (tmp_path / "rule.py").read_text() == "return allowed and not denied\n"


@pytest.mark.parametrize("outcome", ["STALE", "ERROR", "SURVIVED"])
def test_every_mutant_counts_in_the_score_and_any_not_caught_fails_the_bench(outcome):
    line, code = mutants.score([("M01", "caught"), ("M02", outcome), ("M03", "caught")])
    assert line.startswith("score: 2/3 ") and f"{outcome.lower()}: M02" in line
    assert code == 1


def test_all_caught_passes():
    assert mutants.score([("M01", "caught"), ("M02", "caught")]) == ("score: 2/2 planted bugs caught by focused unit tests", 0)
