"""One row per model run, from the files ``trace-model`` and ``golden`` wrote in its folder: the
family × thresholds table of ``leopard model-table``.

A run folder holds ``model-trace.json`` and ``golden.json`` (or ``golden-summary.json``: the same report
without its per-problem lists); when the trace used learned thresholds, the ``training.json`` beside
that ``thresholds.json`` (or in the run folder) says how they were trained. The end-to-end speedup
counts loading as the engine does it today, before each job: ``(cycles_head.dense + cycles_load) /
(cycles_head.early_termination + cycles_load)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import read_json
from leopard.model.training.hf_figures import MEASURES, REPORT_KEY, SPREAD_CHANGE

GOLDEN_FILES = ("golden.json", "golden-summary.json")
COLUMNS = ("run", "family", "thresholds", "scores pruned", "accuracy", "change vs own attention",
           "change vs dense control", "spread", "planes per key", "front end", "whole head", "end to end")


def _golden(folder: Path) -> dict[str, Any]:
    for name in GOLDEN_FILES:
        if (folder / name).is_file():
            return read_json(folder / name, "golden report")
    raise LeopardError(f"{folder}: no {' or '.join(GOLDEN_FILES)}; run leopard golden --trace "
                       f"{folder / 'trace.npz'} --out {folder / 'golden.json'}")


def _thresholds(report: dict[str, Any], folder: Path) -> str:
    if report.get("thresholds") is None:
        return f"{100 * report['prune_target']:g} % quantile"
    beside = [folder / "training.json", Path(report["thresholds"]).parent / "training.json"]
    training = next((path for path in beside if path.is_file()), None)
    if training is None:
        return "learned"
    settings = read_json(training, "training log")["settings"]
    distill = f", distill {settings['distill']:g}" if settings.get("distill") else ""
    return f"learned, λ = {settings['lam']:g}{distill}"


def _interval(entry: dict[str, Any] | None, unit: str = "") -> str:
    if entry is None:
        return "—"
    low, high = entry["ci95"]
    return f"{entry['value']:+.2f}{unit} [{low:+.2f}, {high:+.2f}]"


def row(folder: Path) -> dict[str, Any]:
    """The figures of one run folder (see the module docstring)."""
    report = read_json(folder / "model-trace.json", "model trace report")
    golden = _golden(folder)
    family = report["family"]
    figures = report.get(REPORT_KEY.get(family, ""))
    head, load = golden["cycles_head"], golden["cycles_load"]
    values: dict[str, Any] = {
        "run": folder.name, "family": f"{family} ({report['model']})",
        "thresholds": _thresholds(report, folder),
        "scores pruned": f"{100 * golden['pruned_fraction']:.1f} %",
        "planes per key": f"{golden['mean_planes']:.2f}",
        "front end": f"{golden['speedup']:.2f}×", "whole head": f"{golden['speedup_head']:.2f}×",
        "end to end": f"{(head['dense'] + load) / (head['early_termination'] + load):.2f}×",
    }
    if figures is None:
        values.update({name: "—" for name in COLUMNS if name not in values})
        return values
    accuracy, spread = MEASURES[family]
    spread_key, _, unit = SPREAD_CHANGE[family]
    engine = figures[accuracy]["engine"]
    low, high = engine["ci95"]
    control = figures.get("dense_control")
    spread_value = figures[spread]["engine"]["value"]
    values.update({
        "accuracy": f"{engine['value']:.2f} % [{low:.2f}, {high:.2f}]",
        "change vs own attention": _interval(figures["accuracy_change"]),
        "change vs dense control": _interval(None if control is None else control["accuracy_change"]),
        "spread": f"{spread} {spread_value:,.2f} ({_interval(figures[spread_key], ' ' + unit)} vs own)",
    })
    return values


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(values[name]) for name in COLUMNS) + " |" for values in rows]
    return "\n".join(lines) + "\n"
