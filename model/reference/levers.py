"""The lever bench: the same real sentences' traces, one per export (the baseline and each training-side
lever alone and combined), run by the golden and cycle models (which the RTL matches exactly) with the
paper's bound and with each hardware lever, with each export's accuracy, as one table.

Levers (``docs/levers.md``): 1, zero-plane skipping (hardware, ``skip_zero_planes``); 2, outlier-aware
quantization (``clip_percentile``, ``clip_q_percentile``); 3, key centering in the model
(``center_keys``); 4, cost-aware training (``plane_cost``); 5, finer key scaling (``key_block``).
"""

from __future__ import annotations

from typing import Any

from leopard.hw.config import EngineConfig
from leopard.model.reference import golden, report

DEFAULT_CLIP_PERCENTILE = 99.0
"""Keys saturate at this percentile by default: on the λ = 0.4 MiniLM export with per-channel key
scales it saves 16 % of the planes at no accuracy cost (``results/levers/levers.md``)."""
DEFAULT_KEY_BLOCK = 1
"""Per-channel key scales by default (see ``DEFAULT_CLIP_PERCENTILE``)."""

HARDWARE: dict[str, dict[str, Any]] = {
    "paper bound": {"skip_zero_planes": False},
    "zero-plane skipping": {"skip_zero_planes": True},
}
"""Hardware settings every trace runs under: engine config changes on top of the trace's config."""

FIGURES = ("pruned_fraction", "mean_planes", "mean_planes_pruned", "speedup", "efficiency", "speedup_head",
           "efficiency_head")


def training_levers(training: dict[str, Any]) -> str:
    """The training-side levers an export's ``training`` settings use, e.g. ``2 (k 99, q 99) + 5 (1)``."""
    used = []
    clip_k, clip_q = training.get("clip_percentile", 100.0), training.get("clip_q_percentile", 100.0)
    if min(clip_k, clip_q) < 100:
        used.append(f"2 (k {clip_k:g}, q {clip_q:g})")
    if training.get("center_keys", False):
        used.append("3 (centered keys)")
    if training.get("plane_cost", 0.0) > 0:
        used.append(f"4 ({training['plane_cost']:g}, {training.get('plane_proxy', 'log')})")
    if training.get("key_block", 0) > 0:
        used.append(f"5 ({training['key_block']})")
    return " + ".join(used) or "-"


def variant_rows(name: str, training: dict[str, Any], evaluation: dict[str, Any], cfg: EngineConfig,
                 problems: golden.Problems) -> list[dict[str, Any]]:
    """One row per hardware setting for one export: its levers and accuracy (``leopard evaluate``'s
    report) and the golden figures of its trace."""
    rows = []
    for hardware, changes in HARDWARE.items():
        figures = report.golden_report(cfg.replace(**changes), problems)
        rows.append({
            "variant": name, "training_levers": training_levers(training), "hardware": hardware,
            "lambda": training.get("lam"), "seed": training.get("seed"),
            "accuracy_quantized_pruned": evaluation["accuracy"]["quantized_pruned"],
            "accuracy_float": evaluation["accuracy"]["float"],
            "accuracy_loss": evaluation["accuracy_loss"],
            "decision_flips_fraction": evaluation["decision_flips_fraction"],
            "problems": problems.count,
            **{key: figures[key] for key in FIGURES},
            "ideal_speedup": round(cfg.k_bits / figures["mean_planes"], 4),
        })
    return rows


def with_shares(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``planes_saved``: the fraction of the first row's (the baseline's) mean planes
    each row saves, so every lever's share of the gain reads off one column; and ``accuracy_change``:
    its accuracy minus the baseline's (a lever that retrains moves the weights, which ``accuracy_loss``,
    measured against the same weights, does not show)."""
    planes, accuracy = rows[0]["mean_planes"], rows[0]["accuracy_quantized_pruned"]
    return [{**row, "planes_saved": round(1 - row["mean_planes"] / planes, 4),
             "accuracy_change": round(row["accuracy_quantized_pruned"] - accuracy, 4)} for row in rows]


COLUMNS = (
    ("export", "variant", "{}"), ("training levers", "training_levers", "{}"), ("hardware", "hardware", "{}"),
    ("accuracy, quantized + pruned", "accuracy_quantized_pruned", "{:.2f} %"),
    ("accuracy loss", "accuracy_loss", "{:+.2f}"), ("vs first row", "accuracy_change", "{:+.2f}"),
    ("pruned", "pruned_fraction", "{:.1%}"),
    ("mean planes", "mean_planes", "{:.3f}"), ("planes per pruned key", "mean_planes_pruned", "{:.3f}"),
    ("planes saved", "planes_saved", "{:.1%}"),
    ("front-end speedup", "speedup", "{:.3f}"), ("efficiency", "efficiency", "{:.3f}"),
    ("whole-head speedup", "speedup_head", "{:.3f}"), ("efficiency, head", "efficiency_head", "{:.3f}"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as Markdown (accuracies in percent; the loss, BRIEF §5, and the change against the first
    row in points)."""
    lines = ["| " + " | ".join(title for title, _, _ in COLUMNS) + " |", "|---|---|---|" + "---:|" * 11]
    lines += ["| " + " | ".join(form.format(row[key]) for _, key, form in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


COST_KEYS = ("lut", "ff", "carry", "bram", "dsp", "lutram")


def synthesis_costs(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Resources and Fmax per hardware setting for each design (top, lanes) that every ``leopard synth``
    report (``synth.json``) holds, with the LUT change against the first setting's same design."""
    points = {hardware: {(point["top"], point["lanes"]): point for point in synth["results"]}
              for hardware, synth in reports.items()}
    common = sorted(set.intersection(*(set(found) for found in points.values()))) if points else []
    costs = []
    for hardware, found in points.items():
        for design in common:
            point = found[design]
            core = point.get("core") or {}
            costs.append({"hardware": hardware, "top": design[0], "lanes": design[1],
                          **{key: core.get(key) for key in COST_KEYS}, "fmax_mhz": point.get("fmax_mhz")})
    first = {(c["top"], c["lanes"]): c for c in costs[: len(common)]}
    for cost in costs:
        base, lut = first[(cost["top"], cost["lanes"])]["lut"], cost["lut"]
        cost["lut_change"] = round(lut / base - 1, 4) if base and lut is not None else None
    return costs


def cost_table(costs: list[dict[str, Any]], device: str) -> str:
    """The synthesis costs as Markdown."""
    lines = [f"Core resources after synthesis and Fmax after place and route on the {device}:", "",
             "| hardware | top | lanes | LUT4 | LUT4 change | FF | carry | BRAM | DSP | LUTRAM "
             "| Fmax (MHz) |",
             "|---|---|" + "---:|" * 9]
    for cost in costs:
        change = "–" if cost["lut_change"] is None else f"{cost['lut_change']:+.1%}"
        fmax = "–" if cost["fmax_mhz"] is None else f"{cost['fmax_mhz']:.1f}"
        lines.append(f"| {cost['hardware']} | {cost['top']} | {cost['lanes']} | {cost['lut']} | {change} "
                     f"| {cost['ff']} | {cost['carry']} | {cost['bram']} | {cost['dsp']} | {cost['lutram']} "
                     f"| {fmax} |")
    return "\n".join(lines) + "\n"
