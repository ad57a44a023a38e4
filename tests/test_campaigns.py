"""The soak's plan of random configs and the mutation campaign's mutants: the plan covers the config space
and follows from the seed; every mutant applies to today's code exactly once; a mutant that a test
kills is reported killed, by that test."""

import dataclasses

import pytest

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model.reference import trace as trace_file
from leopard.verif import mutation, soak
from leopard.verif.mutants import MUTANTS, Mutant


def test_the_soak_plan_spans_the_config_space_and_follows_the_seed():
    points = soak.plan(1_000_000, seed=1)
    assert points == soak.plan(1_000_000, seed=1)
    assert points != soak.plan(1_000_000, seed=2)
    assert len(points) >= soak.MIN_CONFIGS and sum(point.keys for point in points) >= 1_000_000
    configs = [point.cfg for point in points]
    assert {cfg.head_dim for cfg in configs} >= {64}
    assert min(cfg.k_bits for cfg in configs) <= 5 and max(cfg.k_bits for cfg in configs) >= 11
    assert min(cfg.lanes for cfg in configs) <= 2 and max(cfg.lanes for cfg in configs) >= 15
    assert {cfg.skip_zero_planes for cfg in configs} == {False, True}
    assert {point.causal for point in points} == {False, True}
    assert min(cfg.fifo_depth for cfg in configs) == 4
    assert {cfg.queries_in_flight for cfg in configs} >= {2, 16}


def test_every_mutant_applies_to_the_code_exactly_once():
    names = [mutant.name for mutant in MUTANTS]
    assert len(set(names)) == len(names)
    assert sum(mutant.path.startswith("hw/rtl/") for mutant in MUTANTS) >= 20
    assert sum(not mutant.path.startswith("hw/rtl/") for mutant in MUTANTS) >= 10
    for mutant in MUTANTS:
        assert (mutation.ROOT / mutant.path).read_text().count(mutant.find) == 1, mutant.name
        assert mutant.find != mutant.replace


def test_a_mutant_whose_code_moved_is_refused(tmp_path):
    project = tmp_path / "project"
    (project / "hw").mkdir(parents=True)
    (project / "hw" / "x.py").write_text("a = 1\na = 1\n")
    stale = Mutant("stale", "hw/x.py", "a = 1", "a = 2", "twice", ("tests",))
    with pytest.raises(LeopardError, match=r"occurs 2 times in hw/x\.py"):
        mutation._apply(project, stale)


def test_the_summary_flags_survivors_and_killed_equivalents():
    rows = [
        {"name": "a", "path": "hw/rtl/lane.py", "outcome": "failed", "killed": True, "killed_by": "t1",
         "equivalent": None},
        {"name": "b", "path": "model/reference/golden.py", "outcome": "passed", "killed": False,
         "killed_by": None, "equivalent": None},
        {"name": "c", "path": "hw/rtl/lane.py", "outcome": "failed", "killed": True, "killed_by": "t2",
         "equivalent": "no result changes"},
    ]
    report = mutation.summary(rows)
    assert (report["non_equivalent"], report["killed"], report["kill_rate"]) == (2, 1, 0.5)
    assert report["problems"] == ["b: survived", "c: marked equivalent but killed by t2"]


@pytest.mark.slow
def test_a_model_mutant_is_killed_by_the_golden_tests(tmp_path):
    mutant = next(m for m in MUTANTS if m.name == "golden-keeps-above-only")
    report = mutation.campaign([mutant], tmp_path, progress=lambda message: None)
    assert report["rows"][0]["killed"] and report["rows"][0]["killed_by"].startswith("tests/test_golden.py")
    assert report["problems"] == []


@pytest.mark.slow
def test_a_soak_reports_a_mismatch_and_keeps_the_failing_problem(tmp_path, monkeypatch):
    """Two configs, the golden model's expectation mutated (one plane more on the keys of problem 1):
    the soak finds the mismatches and writes that problem alone as a trace."""
    from leopard.verif import playback, player_sim

    monkeypatch.setattr(soak, "MIN_CONFIGS", 2)
    original = player_sim.expected_results

    def wrong_on_problem_one(cfg, problems, modes=playback.MODES):
        results = original(cfg, problems, modes)
        planes = {mode: result.planes.copy() for mode, result in results.items()}
        for value in planes.values():
            value[1] += 1
        return {mode: dataclasses.replace(result, planes=planes[mode]) for mode, result in results.items()}

    monkeypatch.setattr(player_sim, "expected_results", wrong_on_problem_one)
    report = soak.run(20_000, seed=7, out=tmp_path, sim="verilator", progress=lambda message: None)
    assert report["configs"] == 2 and report["mismatches"] > 0
    failing = trace_file.load(tmp_path / "first-failure.npz")
    first = report["rows"][report["first_failure"]["config"] - 1]
    assert failing.count == 1 and first["failed_problems"][0] == 1
    assert failing.config == EngineConfig.from_dict(first["config"])
