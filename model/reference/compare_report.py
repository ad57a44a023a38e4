"""The ``leopard compare`` report as Markdown and as a Pareto plot (speedup and whole-head energy
reduction against the paired accuracy change)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leopard.hw import plots


def _interval(figure: dict[str, Any], signed: bool = False) -> str:
    low, high = figure["ci95"]
    value = f"{figure['value']:+.2f}" if signed else f"{figure['value']:.2f}"
    return f"{value} [{low:+.2f}, {high:+.2f}]" if signed else f"{value} [{low:.2f}, {high:.2f}]"


def speed(row: dict[str, Any]) -> tuple[float, str]:
    """The row's speedup over dense: exact cycles for the bit-serial engine, else modelled (marked *)."""
    if "speedup" in row:
        return row["speedup"], f"{row['speedup']:.2f}"
    return row["modelled_speedup"], f"{row['modelled_speedup']:.2f}*"


def accuracy_change(row: dict[str, Any]) -> dict[str, Any]:
    """The paired accuracy change the comparison judges by: against the dense control when it was
    given, else against the same weights in float."""
    return row.get("difference_vs_dense_control", row["difference_vs_same_weights_float"])


def markdown(report: dict[str, Any]) -> str:
    """The rows as a Markdown table with the settings above and the notes below."""
    control = report["dense_control_accuracy"] is not None
    versus = "dense control" if control else "same weights, float dense"
    validation = report["validation"]
    lines = [
        f"{report['test_sentences']} test sentences; accuracy in percent and its change in points against "
        f"the {versus} on the same sentences, each with its 95 % bootstrap interval. Energy per attention "
        "problem (one head of one sentence and layer) in nJ; reductions against the engine in dense mode.",
        "",
        "| policy | accuracy | change | kept | computed in full | QK bit ops | memory read (kbit) "
        "| front (nJ) | head (nJ) | with DRAM (nJ) | energy ↓ front | energy ↓ head | energy ↓ with DRAM "
        "| speedup | speedup, head |",
        "|---|---:|---:|" + "---:|" * 12,
    ]
    for row in report["rows"]:
        energy, reduction = row["energy_pj_per_problem"], row["energy_reduction"]
        head = f"{row['speedup_head']:.2f}" if "speedup_head" in row else "–"
        lines.append(
            f"| {row['policy']} | {_interval(row['accuracy'])} | {_interval(accuracy_change(row), True)} "
            f"| {row['kept_fraction']:.1%} | {row['full_fraction']:.1%} "
            f"| {row['qk_bit_ops_per_problem'] / 1e3:,.0f}k "
            f"| {row['memory_bits_read_per_problem'] / 1e3:,.1f} "
            f"| {energy['front'] / 1e3:.1f} | {energy['head'] / 1e3:.1f} | {energy['total'] / 1e3:.1f} "
            f"| {reduction['front']:.2f}× | {reduction['head']:.2f}× | {reduction['total']:.2f}× "
            f"| {speed(row)[1]} | {head} |"
        )
    tuned = "; ".join(f"{name}: " + ", ".join(f"{knob} {value:g}" for knob, value in
                                              validation[key]["chosen"].items())
                      for name, key in (("SpAtten", "spatten"), ("Sanger", "sanger")))
    lines += [
        "",
        "\\* modelled speedup: dense QK bit operations over the policy's (an idealized peer that turns "
        "every saved bit operation into time); leopard's speedups are the engine's exact cycles "
        "(front end, and whole head), each job alone.",
        "",
        f"Peers tuned on {validation['sentences']} training sentences "
        f"(dense {validation['dense_accuracy']:.2f} %, "
        f"leopard with levers {validation['leopard_accuracy']:.2f} %; allowed loss "
        f"{validation['allowed_loss_points']:.2f} points): {tuned}. Top-k: k per (layer, head) is leopard's "
        "mean kept keys per query with the default levers on those sentences.",
    ]
    return "\n".join(lines) + "\n"


def pareto(report: dict[str, Any], path: Path) -> None:
    """Three panels. On the test sentences, one point per policy: speedup over dense (exact, or
    modelled: hollow) and whole-head energy reduction against the paired accuracy change. On the
    validation sentences: every point the peers' tuning tried (accuracy against whole-head energy
    reduction), the allowed loss as a line."""
    plt = plots.pyplot()
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15.0, 4.4))
    colours = plt.get_cmap("tab20")
    for index, row in enumerate(report["rows"]):
        change = accuracy_change(row)["value"]
        value, _ = speed(row)
        colour = colours(index % colours.N)
        for axes, y in ((left, value), (middle, row["energy_reduction"]["head"])):
            hollow = axes is left and "speedup" not in row
            axes.plot([change], [y], "o", color=colour, mfc="none" if hollow else colour, ms=7)
            axes.annotate(row["policy"], (change, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
    versus = "dense control" if report["dense_control_accuracy"] is not None else "same weights, float"
    titles = ((left, "test: speedup over dense (hollow: modelled)"),
              (middle, "test: whole-head energy reduction"))
    for axes, title in titles:
        axes.axvline(-report["budget_points"], color="grey", lw=0.8, ls=":")
        axes.set_xlabel(f"accuracy change against {versus} (points)")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
    left.set_ylabel("× dense")
    validation = report["validation"]
    dense_pj = validation["dense_head_pj"]
    for peer, marker in (("sanger", "s"), ("spatten", "^")):
        trials = validation[peer]["trials"]
        right.plot([dense_pj / trial["head_pj"] for trial in trials],
                   [trial["accuracy"] - validation["dense_accuracy"] for trial in trials], marker, mfc="none",
                   label=f"{peer}: every point tried")
    right.plot([dense_pj / validation["leopard_head_pj"]],
               [validation["leopard_accuracy"] - validation["dense_accuracy"]], "*", ms=11,
               label="leopard, default levers")
    right.axhline(-validation["allowed_loss_points"], color="grey", lw=0.8, ls=":", label="allowed loss")
    right.set_xlabel("whole-head energy reduction against dense")
    right.set_ylabel("accuracy change against dense (points)")
    right.set_title(f"validation: {validation['sentences']} training sentences", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    figure.tight_layout()
    plots.save(figure, path)
