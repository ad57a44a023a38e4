"""``leopard bench-hw``: the ASIC gate estimate, the bit-parallel reference the ratios are taken against,
its refusals, and (slow) the whole command on the tiny config with the real YoWASP tools."""

import hashlib
import json

import numpy as np
import pytest

from leopard.hw.asic import gates
from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.hw.rtl.generate import top_component, verilog_text
from leopard.hw.rtl.lane import BitSerialLane
from leopard.model.reference import cycles, golden, synthetic
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main
from leopard.verif import hw_bench


def test_the_asic_estimate_grows_with_lanes_and_pipelining_cuts_the_depth():
    cfg = preset("tiny")
    lane = gates.estimate(BitSerialLane(cfg), "leopard_lane")
    two = gates.estimate(*top_component(cfg, "frontend")[::-1])
    three = gates.estimate(*top_component(cfg.replace(lanes=3), "frontend")[::-1])
    parallel = gates.estimate(*top_component(cfg, "bitparallel-lut")[::-1])
    assert lane["gate_equivalents"] == round(lane["transistors"] / 4)
    assert lane["flip_flops"] > 0 and lane["memory_bits"] == 0
    growth = three["gate_equivalents"] - two["gate_equivalents"]
    assert lane["gate_equivalents"] <= growth < 2 * lane["gate_equivalents"]
    assert three["memory_bits"] > two["memory_bits"] > 0
    assert parallel["logic_depth"] < lane["logic_depth"] < two["logic_depth"]


def test_a_yosys_report_without_counts_is_refused():
    with pytest.raises(LeopardError, match="no transistor count"):
        gates.parse("=== top ===\n   12 $_NAND_\n", "Longest topological path in top (length=3):", "")


def test_the_ratios_fall_back_to_the_bare_figures_only_when_the_measured_unit_does_less():
    measured = {"keys": 1_000_000, "bitparallel": {"bitparallel-lut": 1_000_000}}
    bare = hw_bench.BARE_BITPARALLEL
    bare_rate = bare["fmax_mhz"] * 1e6 / (bare["lut"] + 2 * bare["carry"])
    rows = [{"design": "bitparallel-lut", "keys_per_s_per_lut4e": bare_rate / 2}]
    weak = hw_bench._reference(preset("minilm"), rows, measured)
    assert weak["source"].startswith("bare figures") and weak["keys_per_s_per_lut4e"] == round(bare_rate, 1)
    rows[0]["keys_per_s_per_lut4e"] = bare_rate * 2
    assert hw_bench._reference(preset("minilm"), rows, measured)["source"] == "measured"
    rows[0]["keys_per_s_per_lut4e"] = bare_rate / 2
    assert hw_bench._reference(preset("tiny"), rows, measured)["source"] == "measured"


def test_a_missing_default_trace_names_make_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench-hw", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "runs/demo/trace.npz does not exist; make it with make demo" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_hw_on_the_tiny_config(tmp_path):
    cfg = preset("tiny")
    trace = synthetic.random_trace(cfg, seed=3, problems=3, length=8, prune_fraction=0.7)
    path = tmp_path / "trace.npz"
    trace_file.save(trace, path)
    out = tmp_path / "bench"
    assert main(["bench-hw", "--trace", str(path), "--seeds", "1", "2", "--workers", "1", "--out", str(out)]) == 0
    report = json.loads((out / "bench-hw.json").read_text())
    assert (out / "bench-hw.md").read_text() == hw_bench.table(report)
    assert (out / "bench-hw.png").stat().st_size > 0
    rows = {row["design"]: row for row in report["designs"]}
    problems = trace.problems()
    early, dense = golden.run(cfg, problems), golden.run(cfg, problems, dense=True)
    assert rows["frontend"]["cycles"] == sum(
        cycles.job_cycles(cfg, cycles.planes_by_query(early.planes[p], early.visible[p], int(n))).cycles
        for p, n in enumerate(problems.valid_len))
    assert rows["frontend-dense"]["cycles"] == sum(
        cycles.job_cycles(cfg, cycles.planes_by_query(dense.planes[p], dense.visible[p], int(n))).cycles
        for p, n in enumerate(problems.valid_len))
    assert rows["bitparallel-lut"]["cycles"] == sum(
        cycles.bitparallel_cycles(cfg, early.visible[p].sum(axis=1)[:int(n)].tolist(), split=True).cycles
        for p, n in enumerate(problems.valid_len))
    assert report["trace"]["keys"] == int(early.visible.sum())
    for name, row in rows.items():
        assert row["status"] == "ok", name
        assert row["fmax_mhz"] == min(row["fmax_by_seed"].values())
        assert set(row["fmax_by_seed"]) == {"1", "2"}
        assert row["lut4e"] == row["lut"] + 2 * row["carry"]
        assert row["keys_per_s"] == round(report["trace"]["keys"] * row["fmax_mhz"] * 1e6 / row["cycles"])
        _, source = verilog_text(cfg, row["top"])
        assert row["verilog_sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert rows["bitparallel-dsp"]["dsp"] == cfg.head_dim and rows["bitparallel-lut"]["dsp"] == 0
    assert rows["bitparallel-lut"]["vs_bitparallel_lut"] == 1.0
    assert np.isclose(rows["frontend"]["vs_bitparallel_lut"],
                      rows["frontend"]["keys_per_s_per_lut4e"] / rows["bitparallel-lut"]["keys_per_s_per_lut4e"],
                      atol=1e-3)
    assert rows["bitparallel-dsp"]["cycles"] == rows["bitparallel-lut"]["cycles"] - problems.count
    assert set(report["asic"]) == {"lane", "frontend", "bitparallel-lut"}
