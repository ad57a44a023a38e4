"""The readable side of ``leopard synth``: a Markdown table of resources and Fmax per top and lane
count, the lane fit (fixed cost and area per lane), and a PNG plot of both against the lane count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leopard.hw import plots
from leopard.hw.fpga.synth import RESOURCES

HEADINGS = {"lut": "LUT4", "ff": "FF", "carry": "carry", "bram": "BRAM", "dsp": "DSP", "lutram": "LUTRAM"}


def _lanes(point: dict[str, Any]) -> str:
    return f"{point['lanes']} lane{'' if point['lanes'] == 1 else 's'}"


def _fmax_cell(point: dict[str, Any]) -> str:
    if point["status"] == "ok":
        return f"{point['fmax_mhz']:.1f}"
    return "did not place" if point["status"] == "place and route failed" else point["status"]


def seeds_text(seeds: list[int]) -> str:
    """How the Fmax of a report was found: ``nextpnr seed 1`` or ``worst of nextpnr seeds 1, 2, 3``."""
    if len(seeds) == 1:
        return f"nextpnr seed {seeds[0]}"
    return "Fmax the worst of nextpnr seeds " + ", ".join(map(str, seeds))


def table(report: dict[str, Any]) -> str:
    """Markdown: one row per (top, lanes) with the core's resources, the placed design's Fmax and
    logic-cell utilization, what the harness adds; then the lane fit per top when there is one."""
    target = report["target"]
    lines = [
        f"Target: {target['device']} (`{target['name']}`), {seeds_text(report['seeds'])}, "
        f"clock constraint {target['freq_mhz']:g} MHz.",
        "",
        "| top | lanes | " + " | ".join(HEADINGS[k] for k in RESOURCES)
        + " | Fmax (MHz) | logic cells placed | harness adds (LUT4 / FF) |",
        "|---|---:|" + "---:|" * len(RESOURCES) + "---:|---:|---:|",
    ]
    for point in report["results"]:
        core = point.get("core")
        counts = [str(core[k]) if core else "–" for k in RESOURCES]
        placed = point.get("placed", {}).get("logic_cells")
        usage = f"{placed['used']} / {placed['available']}" if placed else "–"
        adds = point["harness"].get("adds")
        added = f"{adds['lut']} / {adds['ff']}" if adds else "–"
        lines.append(
            f"| {point['top']} | {point['lanes']} | " + " | ".join(counts)
            + f" | {_fmax_cell(point)} | {usage} | {added} |"
        )
    for top, fit in report.get("fit", {}).items():
        lines += [
            "",
            f"Lane fit of the {top} core (least squares, `resource ≈ fixed + per_lane · lanes`):",
            "",
            "| | " + " | ".join(HEADINGS[k] for k in RESOURCES) + " |",
            "|---|" + "---:|" * len(RESOURCES),
            "| fixed | " + " | ".join(f"{fit[k]['fixed']:g}" for k in RESOURCES) + " |",
            "| per lane | " + " | ".join(f"{fit[k]['per_lane']:g}" for k in RESOURCES) + " |",
        ]
    critical = [p for p in report["results"] if p.get("critical_path")]
    if critical:
        lines += ["", "Critical paths (after place and route):", ""]
        for point in critical:
            path = point["critical_path"]
            where = "" if path["between"] == "core→core" else f" ({path['between']})"
            lines.append(
                f"- {point['top']}, {_lanes(point)}: `{path['from']}` → `{path['to']}`, "
                f"{path['delay_ns']:.2f} ns, {path['logic_levels']} logic levels{where}"
            )
    failed = [p for p in report["results"] if p["status"] != "ok"]
    if failed:
        lines += ["", "Failed:", ""]
        lines += [f"- {p['top']}, {_lanes(p)}: {p['error']}" for p in failed]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """LUT4, FF and Fmax against the lane count, one line per top; the fitted lines dashed."""
    figure, (area, speed) = plots.pyplot().subplots(1, 2, figsize=(10, 4.2))
    tops = sorted({p["top"] for p in report["results"]})
    for top in tops:
        points = [p for p in report["results"] if p["top"] == top and "core" in p]
        lanes = [p["lanes"] for p in points]
        for kind, marker in (("lut", "o"), ("ff", "s")):
            line = area.plot(lanes, [p["core"][kind] for p in points], marker + "-",
                             label=f"{top} {HEADINGS[kind]}")[0]
            fit = report.get("fit", {}).get(top, {}).get(kind)
            if fit:
                area.plot(lanes, [fit["fixed"] + fit["per_lane"] * x for x in lanes], "--",
                          color=line.get_color(), lw=0.8)
        placed = [p for p in points if p["status"] == "ok"]
        speed.plot([p["lanes"] for p in placed], [p["fmax_mhz"] for p in placed], "o-", label=top)
    for axes in (area, speed):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("lanes")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    area.set_ylabel("cells (core alone)")
    area.set_title("resources (dashed: fixed + per-lane fit)")
    speed.set_ylabel("Fmax (MHz)")
    speed.set_title(f"Fmax after place and route ({report['target']['name']})")
    figure.tight_layout()
    plots.save(figure, path)
