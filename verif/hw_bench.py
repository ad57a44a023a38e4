"""``leopard bench-hw``: the bit-serial front end (early termination, and its dense mode) against the
dense bit-parallel unit built from LUTs alone and with DSPs, on one FPGA and one trace.

Per design: the core's resources, Fmax after place and route (the worst of the nextpnr seeds), cycles
on the trace (the exact cycle models: each problem one job, keys resident), keys decided per second at
Fmax, and keys per second per LUT4-equivalent (LUT4 + 2 × CCU2C: a carry cell holds two LUT4s and
the carry logic; BRAM and DSP are counted beside it, never folded in; both designs keep their keys in
block RAM). The bit-parallel unit is the reference and is never handicapped: when the LUT-only unit
measures worse than the bare figures it must beat (``BARE_BITPARALLEL``, a pipelined unit without a
key store), the ratios are taken against those figures plus the unit's own key store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.asic import gates
from leopard.hw.config import EngineConfig
from leopard.hw.files import write_atomic, write_json
from leopard.hw.fpga import flow, synth
from leopard.hw.ports import BITPARALLEL_TOPS
from leopard.hw.rtl.generate import top_component
from leopard.hw.rtl.lane import BitSerialLane
from leopard.model.reference import cycles, whole_trace
from leopard.model.reference.trace import TraceReader


@dataclasses.dataclass(frozen=True)
class Design:
    """One row: a top synthesized one way, run in one mode."""

    name: str
    top: str
    dsp: bool
    mode: str
    label: str


DESIGNS = (
    Design("frontend", "frontend", True, "early_termination", "bit-serial front end, early termination"),
    Design("frontend-dense", "frontend", True, "dense", "bit-serial front end, dense mode"),
    Design("bitparallel-lut", "bitparallel-lut", False, "dense", "bit-parallel unit, LUTs only"),
    Design("bitparallel-dsp", "bitparallel", True, "dense", "bit-parallel unit, DSP products"),
)
BARE_BITPARALLEL = {"lut": 9241, "carry": 553, "fmax_mhz": 174.7}
"""A pipelined LUT-only bit-parallel QK unit of the minilm width (32 products of 8 × 8 bits, adder tree
registered at every level, threshold compare) without a key store, on the ECP5-85 speed 8: the
least the measured unit must reach (issue "The front end at FPGA speed")."""
BARE_WIDTH = (32, 8, 8)
"""``(head_dim, q_bits, k_bits)`` of the bare figures."""
CONSTRAINT_MHZ = 250.0
ASIC_PARTS = ("lane", "frontend", "bitparallel-lut")
TRACE_FIGURES = ("problems", "keys", "pruned_fraction", "efficiency")


def lut4_equivalents(core: dict[str, Any]) -> int:
    """LUT4 + 2 × CCU2C of a synthesized core."""
    return int(core["lut"]) + 2 * int(core["carry"])


def trace_cycles(cfg: EngineConfig, path: Path, *, progress: Callable[[str], None],
                 pool: fanout.Pool | None) -> dict[str, Any]:
    """Keys decided and cycles of each mode on the trace ``path``: the front end's from the golden and
    cycle models, the bit-parallel unit's from its cycle model."""
    report = whole_trace.golden_report(path, config=lambda _: cfg, progress=progress, pool=pool)
    with TraceReader(path) as reader:
        lengths = reader.valid_len.tolist()
        causal = reader.causal
    bitparallel = dict.fromkeys(BITPARALLEL_TOPS, 0)
    for n in lengths:
        visible = (np.arange(1, n + 1) if causal else np.full(n, n)).tolist()
        for top in BITPARALLEL_TOPS:
            bitparallel[top] += cycles.bitparallel_cycles(cfg, visible, split=top != "bitparallel").cycles
    return {
        "problems": report["problems"], "keys": report["pairs"],
        "frontend": report["cycles"], "bitparallel": bitparallel,
        "pruned_fraction": report["pruned_fraction"], "efficiency": report["efficiency"],
    }


def implementations(cfg: EngineConfig, *, target: str, freq_mhz: float, seeds: tuple[int, ...], out: Path,
                    progress: Callable[[str], None], pool: fanout.Pool | None) -> dict[tuple[str, bool], Any]:
    """Every (top, DSPs allowed) the designs need, synthesized, placed and routed (``leopard synth``'s
    flow, its folders ``synth-dsp`` and ``synth-lut`` under ``out``)."""
    base = dataclasses.replace(synth.target(target), freq_mhz=freq_mhz)
    found: dict[tuple[str, bool], Any] = {}
    for dsp in (True, False):
        tops = sorted({d.top for d in DESIGNS if d.dsp == dsp})
        tgt = base if dsp else synth.without_dsp(base)
        folder = out / ("synth-dsp" if dsp else "synth-lut")
        report = flow.synthesize_sweep([cfg], tops, tgt, seeds=seeds, out=folder, progress=progress,
                                       pool=pool)
        for point in report["results"]:
            found[point["top"], dsp] = point
    return found


def bench(cfg: EngineConfig, trace: Path, *, target: str, freq_mhz: float, seeds: tuple[int, ...], out: Path,
          progress: Callable[[str], None], pool: fanout.Pool | None = None) -> dict[str, Any]:
    """The report of ``leopard bench-hw`` (also written to ``out``: ``bench-hw.json``, ``.md``, ``.png``)."""
    measured = trace_cycles(cfg, trace, progress=progress, pool=pool)
    points = implementations(cfg, target=target, freq_mhz=freq_mhz, seeds=seeds, out=out, progress=progress,
                             pool=pool)
    rows = [_row(design, points[design.top, design.dsp], measured) for design in DESIGNS]
    asic = asic_estimates(cfg, progress)
    reference = _reference(cfg, rows, measured)
    dsp = next(r for r in rows if r["design"] == "bitparallel-dsp")
    for row in rows:
        rate = row.get("keys_per_s_per_lut4e")
        if rate:
            row["vs_bitparallel_lut"] = round(rate / reference["keys_per_s_per_lut4e"], 3)
            if dsp.get("keys_per_s_per_lut4e"):
                row["vs_bitparallel_dsp"] = round(rate / dsp["keys_per_s_per_lut4e"], 3)
    report = {
        "schema": "leopard-bench-hw/1",
        "config": cfg.to_dict(),
        "trace": {"path": str(trace), **{key: measured[key] for key in TRACE_FIGURES}},
        "target": {"name": target, "freq_mhz": freq_mhz, "seeds": list(seeds)},
        "designs": rows,
        "bitparallel_reference": reference,
        "asic": asic,
    }
    write_json(out / "bench-hw.json", report)
    write_atomic(out / "bench-hw.md", table(report))
    plot(report, out / "bench-hw.png")
    return report


def asic_estimates(cfg: EngineConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    """Gate equivalents and logic depth (``hw/asic/gates.py``) of one bit-serial lane, the whole front
    end and the bit-parallel unit."""
    parts = {
        "lane": (BitSerialLane(cfg), "leopard_lane"),
        **{top: top_component(cfg, top)[::-1] for top in ASIC_PARTS[1:]},
    }
    estimates = {}
    for index, (part, (component, name)) in enumerate(parts.items(), 1):
        progress(f"[{index}/{len(parts)}] ASIC estimate of {name} (Yosys, generic CMOS gates)")
        estimates[part] = gates.estimate(component, name)
    return estimates


def _row(design: Design, point: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    cycles_on_trace = (measured["frontend"][design.mode] if design.top == "frontend"
                       else measured["bitparallel"][design.top])
    row: dict[str, Any] = {"design": design.name, "label": design.label, "top": design.top,
                           "status": point["status"], "cycles": cycles_on_trace,
                           "verilog_sha256": point["verilog_sha256"]}
    if "core" in point:
        core = point["core"]
        row.update({kind: core[kind] for kind in ("lut", "carry", "ff", "bram", "dsp", "lutram")},
                   lut4e=lut4_equivalents(core))
    if point["status"] == "ok":
        keys_per_s = measured["keys"] * point["fmax_mhz"] * 1e6 / cycles_on_trace
        by_seed = {str(run["seed"]): run["fmax_mhz"] for run in point["seeds"]}
        row.update(fmax_mhz=point["fmax_mhz"], fmax_by_seed=by_seed, critical_path=point["critical_path"],
                   keys_per_s=round(keys_per_s),
                   keys_per_s_per_lut4e=round(keys_per_s / row["lut4e"], 1))
    else:
        row["error"] = point.get("error", point["status"])
    return row


def _reference(cfg: EngineConfig, rows: list[dict[str, Any]], measured: dict[str, Any]) -> dict[str, Any]:
    """The LUT-only bit-parallel figures the ratios are taken against: the measured unit, or, at the
    width the bare figures are for, those figures plus the unit's key store when they do more keys per
    second per LUT4-equivalent (the store is block RAM: it adds no LUT4)."""
    lut = next(r for r in rows if r["design"] == "bitparallel-lut")
    if (cfg.head_dim, cfg.q_bits, cfg.k_bits) != BARE_WIDTH:
        return {"source": "measured", "keys_per_s_per_lut4e": lut.get("keys_per_s_per_lut4e", 0)}
    bare_lut4e = BARE_BITPARALLEL["lut"] + 2 * BARE_BITPARALLEL["carry"]
    bare_cycles = measured["bitparallel"]["bitparallel-lut"]
    bare_rate = measured["keys"] * BARE_BITPARALLEL["fmax_mhz"] * 1e6 / bare_cycles / bare_lut4e
    if lut.get("keys_per_s_per_lut4e", 0) >= bare_rate:
        return {"source": "measured", "keys_per_s_per_lut4e": lut["keys_per_s_per_lut4e"]}
    return {"source": "bare figures (the measured unit did less)", **BARE_BITPARALLEL,
            "lut4e": bare_lut4e, "keys_per_s_per_lut4e": round(bare_rate, 1)}


COLUMNS = (
    ("LUT4", "lut", "{}"), ("CCU2C", "carry", "{}"), ("LUT4-eq", "lut4e", "{}"), ("FF", "ff", "{}"),
    ("BRAM", "bram", "{}"), ("DSP", "dsp", "{}"), ("Fmax (MHz)", "fmax_mhz", "{:.1f}"),
    ("cycles", "cycles", "{:,}"), ("keys/cycle", "keys_per_cycle", "{:.3f}"),
    ("M keys/s", "keys_per_s", "{:.1f}"), ("keys/s per LUT4-eq", "keys_per_s_per_lut4e", "{:,.0f}"),
    ("vs bit-parallel LUT", "vs_bitparallel_lut", "{:.2f}×"),
    ("vs bit-parallel DSP", "vs_bitparallel_dsp", "{:.2f}×"),
)


def table(report: dict[str, Any]) -> str:
    """Markdown: one row per design, then the reference the ratios use."""
    target, trace = report["target"], report["trace"]
    lines = [
        f"Trace `{trace['path']}`: {trace['problems']} problems, {trace['keys']:,} keys, "
        f"{trace['pruned_fraction']:.1%} pruned. Target `{target['name']}`, clock constraint "
        f"{target['freq_mhz']:g} MHz, Fmax the worst of nextpnr seeds "
        f"{', '.join(map(str, target['seeds']))}.",
        "",
        "| design | " + " | ".join(heading for heading, _, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for row in report["designs"]:
        values = {**row, "keys_per_cycle": trace["keys"] / row["cycles"]}
        if "keys_per_s" in row:
            values["keys_per_s"] = row["keys_per_s"] / 1e6
        else:
            values["fmax_mhz"] = row["status"]
        cells = [fmt.format(values[key]) if isinstance(values.get(key), int | float)
                 else str(values.get(key, "–")) for _, key, fmt in COLUMNS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    reference = report["bitparallel_reference"]
    lines += ["", f"Ratios against the LUT-only bit-parallel unit: {reference['source']} "
                  f"({reference['keys_per_s_per_lut4e']:,.0f} keys/s per LUT4-eq).", "",
              "ASIC estimate (Yosys `abc -g cmos2`, gate equivalents = transistors / 4; memories apart):", "",
              "| part | gate equivalents (NAND2) | flip-flops | memory bits | logic depth (gates) |",
              "|---|---:|---:|---:|---:|"]
    for part in ASIC_PARTS:
        figures = report["asic"][part]
        lines.append(f"| {part} | {figures['gate_equivalents']:,} | {figures['flip_flops']:,} "
                     f"| {figures['memory_bits']:,} | {figures['logic_depth']} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Keys per second per LUT4-equivalent of each design, a bar each."""
    from leopard.hw.plots import pyplot, save

    rows = [row for row in report["designs"] if "keys_per_s_per_lut4e" in row]
    fig, axis = pyplot().subplots(figsize=(7, 4))
    axis.bar([row["design"] for row in rows], [row["keys_per_s_per_lut4e"] for row in rows], color="#4c72b0")
    axis.axhline(report["bitparallel_reference"]["keys_per_s_per_lut4e"], color="#c44e52", linestyle="--",
                 label="bit-parallel reference")
    axis.set_ylabel("keys/s per LUT4-equivalent")
    axis.set_title(f"{report['trace']['keys']:,} keys, Fmax worst of {len(report['target']['seeds'])} seeds")
    axis.legend()
    save(fig, path)
