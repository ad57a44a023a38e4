"""`leopard report` on a small run folder: summary.json from the run's own files, Markdown, plots."""

import json
import shutil
from pathlib import Path

import numpy as np

from leopard.hw.config import preset
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.model.reference.run_report import SUMMARY_KEYS
from leopard.scripts.cli import main

RESULTS = Path(__file__).parent.parent / "results" / "training"


def _run_folder(folder):
    cfg = preset("small")
    trace = synthetic.random_trace(cfg, seed=4, problems=6, length=10, prune_fraction=0.7)
    trace = trace_file.Trace(**{**trace.__dict__, "layer": np.repeat(np.arange(3), 2), "head": np.tile(np.arange(2), 3)})
    trace_file.save(trace, folder / "trace.npz")
    assert main(["golden", "--trace", str(folder / "trace.npz"), "--out", str(folder / "golden.json")]) == 0
    shutil.copyfile(RESULTS / "lambda-0.4" / "evaluation.json", folder / "evaluation.json")
    shutil.copyfile(RESULTS / "sweep.json", folder / "sweep.json")


def test_report_renders_a_run_folder(tmp_path, capsys):
    _run_folder(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    golden = json.loads((tmp_path / "golden.json").read_text())
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())["evaluation"]
    assert tuple(summary) == tuple(sorted(SUMMARY_KEYS))
    assert summary["speedup"] == golden["speedup"] and summary["speedup_head"] == golden["speedup_head"]
    assert summary["accuracy_quantized_pruned"] == evaluation["accuracy"]["quantized_pruned"]
    assert summary["mismatches"] is None
    report = (tmp_path / "report.md").read_text()
    for plot in ("planes", "pruned_per_head", "cycles_per_layer", "accuracy_vs_pruned"):
        assert (tmp_path / "plots" / f"{plot}.png").stat().st_size > 1000
        assert f"plots/{plot}.png" in report
    assert f"| early termination | {golden['cycles']['early_termination']} |" in report


def test_report_twice_gives_identical_files(tmp_path):
    _run_folder(tmp_path)
    outputs = ["summary.json", "report.md", "plots/planes.png", "plots/cycles_per_layer.png"]
    assert main(["report", str(tmp_path)]) == 0
    first = {name: (tmp_path / name).read_bytes() for name in outputs}
    assert main(["report", str(tmp_path)]) == 0
    assert first == {name: (tmp_path / name).read_bytes() for name in outputs}
