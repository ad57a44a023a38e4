"""A run folder (``leopard demo``, or the files of ``leopard evaluate``, ``golden``, ``sim`` and ``sweep``
gathered in one folder) rendered as ``summary.json`` (every headline figure under stable keys),
``report.md`` and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import plots as png
from leopard.hw.errors import LeopardError
from leopard.hw.files import read_json, write_atomic, write_json
from leopard.hw.json_shape import NUMBER, check
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file

SUMMARY_KEYS = (
    "accuracy_float", "accuracy_quantized_pruned", "accuracy_loss", "pruned_fraction_test",
    "problems", "pruned_fraction", "mean_planes", "mean_planes_pruned", "speedup", "efficiency",
    "speedup_head", "efficiency_head", "mismatches", "simulator",
)


_OPTIONAL_NUMBER = (NUMBER, None)
_RESULTS = {"accuracy": {"float": NUMBER, "quantized_pruned": NUMBER}, "accuracy_loss": NUMBER,
            "pruned_fraction": NUMBER}
_FIGURES = {"problems": NUMBER, "pruned_fraction": NUMBER, "mean_planes": _OPTIONAL_NUMBER,
            "mean_planes_pruned": _OPTIONAL_NUMBER, "speedup": NUMBER, "efficiency": NUMBER,
            "speedup_head?": NUMBER, "efficiency_head?": NUMBER, "mismatches?": NUMBER,
            "problem_cycles?": {"front?": {"early_termination": [int], "dense": [int]},
                                "head?": {"early_termination": [int], "dense": [int]}}}
SHAPES: dict[str, Any] = {
    "evaluation.json": ({"evaluation": _RESULTS}, _RESULTS),
    "sim.json": _FIGURES,
    "golden.json": _FIGURES,
    "sim.timing.json": {"frontend": {"simulator": str}},
    "sweep.json": {"rows": [{"lambda": NUMBER, "pruned_fraction": NUMBER, "accuracy_quantized_pruned": NUMBER,
                             "accuracy_float": NUMBER}]},
}
"""What ``leopard report`` reads from each run-folder file."""


def _read_json(run_dir: Path, name: str) -> dict[str, Any] | None:
    """The run-folder file ``name``, checked against its shape, or None when the run did not write it."""
    path = run_dir / name
    if not path.exists():
        return None
    return check(read_json(path, "run-folder file"), SHAPES[name], str(path))


def summarize(run_dir: Path) -> dict[str, Any]:
    """Headline figures from ``evaluation.json``, ``sim.json`` (or ``golden.json``) in ``run_dir``."""
    evaluation = _read_json(run_dir, "evaluation.json")
    measured = _read_json(run_dir, "sim.json")
    figures = measured or _read_json(run_dir, "golden.json")
    if figures is None:
        raise LeopardError(f"{run_dir} holds neither sim.json nor golden.json: nothing to report")
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    if evaluation is not None:
        result = evaluation.get("evaluation", evaluation)
        summary.update(
            accuracy_float=result["accuracy"]["float"],
            accuracy_quantized_pruned=result["accuracy"]["quantized_pruned"],
            accuracy_loss=result["accuracy_loss"],
            pruned_fraction_test=result["pruned_fraction"],
        )
    for key in ("problems", "pruned_fraction", "mean_planes", "mean_planes_pruned", "speedup", "efficiency",
                "speedup_head", "efficiency_head"):
        summary[key] = figures.get(key)
    summary["mismatches"] = measured.get("mismatches") if measured else None
    timing = _read_json(run_dir, "sim.timing.json")
    summary["simulator"] = timing["frontend"]["simulator"] if timing else None
    return summary


def _plot(path: Path, draw: Any) -> None:
    figure, axes = png.pyplot().subplots(figsize=(6.4, 4.0))
    draw(axes)
    figure.tight_layout()
    png.save(figure, path)


def render(run_dir: Path) -> list[Path]:
    """Write ``summary.json``, ``report.md`` and the plots into ``run_dir``; return the paths."""
    summary = summarize(run_dir)
    figures = _read_json(run_dir, "sim.json") or _read_json(run_dir, "golden.json") or {}
    written = [run_dir / "summary.json", run_dir / "report.md"]
    plots: dict[str, str] = {}
    trace_path = run_dir / "trace.npz"
    if trace_path.exists():
        trace = trace_file.load(trace_path)
        golden.check_report_memory(trace)
        result = golden.run(trace.config, trace.problems())
        planes, kept = result.planes[result.visible], result.kept[result.visible]
        bins = np.arange(1, trace.config.k_bits + 2) - 0.5

        def histogram(axes: Any) -> None:
            axes.hist([planes[~kept], planes[kept]], bins=bins, stacked=True, label=["pruned", "kept"])
            axes.set(xlabel="bit planes processed", ylabel="keys", title="Planes per key")
            axes.legend()

        _plot(run_dir / "plots" / "planes.png", histogram)
        plots["Planes processed per key"] = "plots/planes.png"
        if trace.layer is not None and trace.head is not None:
            layers, heads = int(trace.layer.max()) + 1, int(trace.head.max()) + 1
            pruned = np.full((layers, heads), np.nan)
            for p in range(trace.count):
                seen = result.visible[p]
                pruned[trace.layer[p], trace.head[p]] = 1.0 - result.kept[p][seen].mean()

            def heat(axes: Any) -> None:
                image = axes.imshow(pruned, vmin=0, vmax=1, cmap="viridis")
                axes.set(xlabel="head", ylabel="layer", title="Fraction of scores pruned")
                axes.figure.colorbar(image, ax=axes)

            _plot(run_dir / "plots" / "pruned_per_head.png", heat)
            plots["Pruned fraction per layer and head"] = "plots/pruned_per_head.png"
            problem_cycles = figures.get("problem_cycles")
            if problem_cycles:
                if any(len(values) != trace.count for modes in problem_cycles.values()
                       for values in modes.values()):
                    raise LeopardError(f"{run_dir}: problem_cycles does not list the {trace.count} problems "
                                       f"of {trace_path}; the report and the trace are from different runs")
                per_layer = {
                    (part, mode): [sum(c for c, layer in zip(values, trace.layer, strict=True) if layer == i)
                                   for i in range(layers)]
                    for part, modes in problem_cycles.items() for mode, values in modes.items()
                }

                def bars(axes: Any) -> None:
                    x = np.arange(layers)
                    for offset, (part, mode) in enumerate(sorted(per_layer)):
                        axes.bar(x + (offset - 1.5) * 0.2, per_layer[part, mode], width=0.2,
                                 label=f"{part} {mode.replace('_', ' ')}")
                    axes.set(xlabel="layer", ylabel="cycles", title="Cycles per layer")
                    axes.legend(fontsize=8)

                _plot(run_dir / "plots" / "cycles_per_layer.png", bars)
                plots["Cycles per layer, dense vs early termination"] = "plots/cycles_per_layer.png"
    sweep = _read_json(run_dir, "sweep.json")
    if sweep is not None:
        rows = sweep["rows"]

        def tradeoff(axes: Any) -> None:
            pruned = [100 * row["pruned_fraction"] for row in rows]
            hardware = [row["accuracy_quantized_pruned"] for row in rows]
            axes.plot(pruned, hardware, "o-", label="quantized + pruned")
            dense = [row["accuracy_float"] for row in rows]
            axes.plot(pruned, dense, "s--", label="same weights, float dense")
            for row, x, y in zip(rows, pruned, hardware, strict=True):
                axes.annotate(f"λ={row['lambda']}", (x, y))
            axes.set(xlabel="scores pruned (%)", ylabel="accuracy (%)", title="Accuracy vs pruning")
            axes.legend()

        _plot(run_dir / "plots" / "accuracy_vs_pruned.png", tradeoff)
        plots["Accuracy vs pruned fraction (λ sweep)"] = "plots/accuracy_vs_pruned.png"
    write_json(run_dir / "summary.json", summary)
    write_atomic(run_dir / "report.md", markdown(summary, figures, plots))
    return written + [run_dir / path for path in plots.values()]


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(summary: dict[str, Any], figures: dict[str, Any], plots: dict[str, str]) -> str:
    """The report: headline table, cycle table, plots."""
    lines = ["# leopard run report", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key} | {_format(value)} |" for key, value in summary.items()]
    for part, suffix in (("front end", ""), ("whole head", "_head")):
        counts = figures.get(f"cycles{suffix}")
        if counts:
            lines += ["", f"## Cycles, {part}", "", "| mode | cycles |", "|---|---|"]
            lines += [f"| {mode.replace('_', ' ')} | {_format(value)} |" for mode, value in counts.items()]
    for title, path in plots.items():
        lines += ["", f"## {title}", "", f"![{title}]({path})"]
    lines += ["", "Figures under stable keys: `summary.json`.", ""]
    return "\n".join(lines)
