"""A sweep over ``λ``: one training run per value, sharing the fine-tuning phase (it does not depend on
``λ``: it runs once, in the first run's folder, and every run resumes from its ``finetuned.pt``; the
runs are points on Dask workers, ``hw/fanout.py``), then the trade-off table
(``sweep.md``, ``sweep.json``), the trade-off plot (``tradeoff.png``) and a threshold map per ``λ``
(``thresholds-lambda-<λ>.png``). The dense control (same schedule, no thresholds) runs beside them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.files import write_atomic, write_json
from leopard.model.reference import plots
from leopard.model.training import export
from leopard.model.training.data import DataSpec
from leopard.model.training.train import CHECKPOINT, EXPORT, FINETUNED, TrainSettings, finetune, train


def run_name(lam: float) -> str:
    return f"lambda-{lam:g}"


def row(lam: float, summary: dict[str, Any], control_float: float) -> dict[str, Any]:
    """One line of the trade-off table from a run's evaluation summary and the dense control's float
    accuracy."""
    evaluation = summary["evaluation"]
    accuracy = evaluation["accuracy"]
    return {
        "lambda": lam,
        "pruned_fraction": evaluation["pruned_fraction"],
        "accuracy_quantized_pruned": accuracy["quantized_pruned"],
        "accuracy_float": accuracy["float"],
        "accuracy_float_pruned": accuracy["float_pruned"],
        "accuracy_quantized": accuracy["quantized"],
        "accuracy_loss": evaluation["accuracy_loss"],
        "accuracy_loss_vs_control": round(accuracy["quantized_pruned"] - control_float, 4),
        "accuracy_loss_vs_finetuned": summary["accuracy_loss_vs_finetuned"],
        "decision_flips_fraction": evaluation["decision_flips_fraction"],
        "empty_queries_fraction": round(evaluation["empty_queries"] / evaluation["queries"], 6),
    }


def table(rows: list[dict[str, Any]], finetune_accuracy: float | None, control: dict[str, float]) -> str:
    """The trade-off as a Markdown table (accuracies in percent, differences in points)."""
    lines = [
        f"Float accuracy after fine-tuning, before threshold training: {finetune_accuracy} %. "
        f"Dense control (the whole schedule without thresholds): {control['float']} % float, "
        f"{control['quantized']} % quantized.",
        "",
        "| λ | scores pruned | accuracy, quantized + pruned | same weights, float dense "
        "| accuracy loss | vs dense control | vs fine-tuned | decisions moved by quantization "
        "| queries with every key pruned |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in rows:
        lines.append(
            f"| {entry['lambda']:g} | {100 * entry['pruned_fraction']:.1f} % "
            f"| {entry['accuracy_quantized_pruned']:.2f} % | {entry['accuracy_float']:.2f} % "
            f"| {entry['accuracy_loss']:+.2f} | {entry['accuracy_loss_vs_control']:+.2f} "
            f"| {entry['accuracy_loss_vs_finetuned']:+.2f} "
            f"| {100 * entry['decision_flips_fraction']:.3f} % "
            f"| {100 * entry['empty_queries_fraction']:.2f} % |"
        )
    return "\n".join(lines) + "\n"


CONTROL = "dense-control"


def run(out: Path, lambdas: list[float], settings: TrainSettings, spec: DataSpec, cfg: EngineConfig,
        *, model_dir: Path | None = None, progress: bool = True, pool: fanout.Pool | None = None,
        report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every ``λ`` in ``out/lambda-<λ>`` and the dense control in ``out/dense-control`` (resuming
    what is there), then write the results. The shared fine-tuning runs first, then every run as a point
    on ``pool`` (``progress``: training bars, in this process only; ``report``: a line per finished
    point)."""
    if len(set(lambdas)) != len(lambdas) or not lambdas:
        raise LeopardError(f"--lambdas must list distinct values, got {lambdas}")
    first = out / run_name(lambdas[0])
    runs = [(run_name(lam), replace(settings, lam=lam)) for lam in lambdas]
    runs.append((CONTROL, replace(settings, prune=False)))
    pool = pool or fanout.Pool(1)
    bars = progress and pool.serial
    with pool:
        shared = first / FINETUNED
        if not shared.exists() and not (first / EXPORT).exists():
            fanout.values(pool.run([fanout.Point("fine-tuning", finetune, (first, runs[0][1], spec, cfg),
                                                 {"model_dir": model_dir, "progress": bars})], report,
                                   what="stages"), "stages")
        for name, _ in runs[1:]:
            run_dir = out / name
            if not (run_dir / CHECKPOINT).exists() and shared.exists():
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared, run_dir / CHECKPOINT)
        points = [fanout.Point(name, train, (out / name, run_settings, spec, cfg),
                               {"model_dir": model_dir, "progress": bars}) for name, run_settings in runs]
        summaries = dict(zip([name for name, _ in runs],
                             fanout.values(pool.run(points, report, what="training runs"), "training runs"),
                             strict=True))
    control = summaries.pop(CONTROL)
    finetune_accuracy = control["finetune_accuracy"]
    control_accuracy = control["evaluation"]["accuracy"]
    rows = [row(lam, summaries[run_name(lam)], control_accuracy["float"]) for lam in lambdas]
    for lam, entry in zip(lambdas, rows, strict=True):
        made = export.load(out / run_name(lam) / EXPORT)
        pruned = np.array(summaries[run_name(lam)]["evaluation"]["pruned_per_head"])
        plots.threshold_map(
            made.threshold, pruned,
            f"λ = {lam:g}: {100 * entry['pruned_fraction']:.1f} % pruned, "
            f"accuracy {entry['accuracy_quantized_pruned']:.2f} %",
            out / f"thresholds-{run_name(lam)}.png",
        )
    text = table(rows, finetune_accuracy, control_accuracy)
    write_atomic(out / "sweep.md", text)
    write_json(out / "sweep.json", {"finetune_accuracy": finetune_accuracy, "dense_control": control_accuracy,
                                    "rows": rows})
    plots.tradeoff(rows, finetune_accuracy, control_accuracy, out / "tradeoff.png")
    return {"rows": rows, "table": text}
