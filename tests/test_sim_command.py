"""`leopard sim` end to end on a small trace: the report keys, exit codes, waveforms, reproducibility."""

import json

import pytest

from leopard.hw.config import preset
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "small.npz"
    trace_file.save(synthetic.random_trace(preset("small"), seed=3, problems=3, length=12, prune_fraction=0.7),
                    path)
    return path


def test_sim_report_equals_golden_report_plus_mismatches(trace_path, tmp_path, monkeypatch):
    monkeypatch.chdir(trace_path.parent)
    golden, sim = tmp_path / "golden.json", tmp_path / "sim.json"
    assert main(["golden", "--trace", trace_path.name, "--out", str(golden)]) == 0
    assert main(["sim", "--trace", trace_path.name, "--sim", "verilator", "--out", str(sim), "--chunk", "2"]) == 0
    modelled, measured = json.loads(golden.read_text()), json.loads(sim.read_text())
    assert measured.pop("mismatches") == 0
    assert measured == modelled
    assert set(modelled) >= {"cycles", "cycles_head", "speedup_head", "efficiency_head", "cycles_load"}
    assert json.loads(sim.with_suffix(".timing.json").read_text())["engine"]["simulated_cycles"] > 0


def test_sim_on_two_dask_workers_writes_the_serial_report(trace_path, tmp_path):
    serial, spread = tmp_path / "serial.json", tmp_path / "spread.json"
    for out, workers in ((serial, "1"), (spread, "2")):
        assert main(["sim", "--trace", str(trace_path), "--sim", "icarus", "--chunk", "1", "--workers", workers,
                     "--out", str(out)]) == 0
    assert spread.read_bytes() == serial.read_bytes()
    assert json.loads(serial.read_text())["problems"] == 3


def test_sim_twice_gives_identical_reports(trace_path, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for out in (first, second):
        assert main(["sim", "--trace", str(trace_path), "--sim", "verilator", "--out", str(out)]) == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_waves_are_written_beside_the_report(sim, trace_path, tmp_path):
    out = tmp_path / "sim.json"
    assert main(["sim", "--trace", str(trace_path), "--sim", sim, "--out", str(out), "--waves"]) == 0
    for top in ("leopard_frontend", "leopard_engine"):
        waves = tmp_path / f"{top}-{sim}.fst"
        assert waves.stat().st_size > 1000
