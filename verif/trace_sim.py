"""A trace run on the emitted Verilog: every problem on the front end and the engine, in both modes, in
launches of a few problems each (the two tops in parallel), checked against the golden model; the
report of ``leopard sim`` and its timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from leopard.hw.rtl.generate import verilog_text
from leopard.model.reference import report
from leopard.model.reference import trace as trace_file
from leopard.verif import simulate
from leopard.verif.plan import MODES, make_plan

Progress = Callable[[str], None]


def simulate_trace(
    trace_path: str, trace: trace_file.Trace, sim: str, top: str, *, chunk: int,
    waves_dir: Path | None, stalls: bool, progress: Progress,
) -> dict[str, Any]:
    """Run every problem of the trace on ``top`` in both modes (stall-free), in launches of ``chunk``
    problems; return the measured cycles, mismatches, messages and the simulator's throughput."""
    cfg = trace.config
    module, source = verilog_text(cfg, top)
    started = time.perf_counter()
    progress(f"building the {sim} model of {module} (cached by the Verilog's hash)")
    compiled = simulate.build(module, source, sim, waves=waves_dir is not None)
    build_seconds = time.perf_counter() - started
    chunks = [list(range(i, min(i + chunk, trace.count))) for i in range(0, trace.count, chunk)]
    if waves_dir is not None:
        chunks = [list(range(trace.count))]
    totals: dict[str, Any] = {
        "problem_cycles": {mode: [] for mode in MODES},
        "mismatches": 0, "messages": [], "sim_cycles": 0, "sim_seconds": 0.0,
        "build_seconds": build_seconds,
    }
    for index, problems in enumerate(chunks, 1):
        progress(f"[{index}/{len(chunks)}] {sim} {module}: problems {problems[0]}..{problems[-1]} "
                  f"of {trace.count}")
        runs = [{"trace": trace_path, "problems": problems}]
        if stalls:
            runs.append({"trace": trace_path, "problems": problems, "idle": 0.3, "backpressure": 0.5,
                         "batches": 2, "seed": index, "modes": ["early_termination"]})
        outcome = simulate.run(
            compiled, simulate.COCOTB_BENCH, make_plan(cfg, runs, top=top), waves_dir=waves_dir
        )
        for mode in MODES:
            totals["problem_cycles"][mode].extend(outcome["runs"][0][mode]["problem_cycles"])
        totals["mismatches"] += outcome["mismatches"]
        totals["messages"].extend(outcome["messages"])
        totals["sim_cycles"] += outcome["sim_cycles"]
        totals["sim_seconds"] += outcome["seconds"]
        if "waves" in outcome:
            totals["waves"] = outcome["waves"]
    return totals


def simulate_trace_file(
    trace_path: str, trace: trace_file.Trace, sim: str, *, chunk: int, waves_dir: Path | None, stalls: bool,
    progress: Progress,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """Both tops on every problem: ``(report, timings, per-top totals)``; the report has ``leopard
    golden``'s keys and ``mismatches``, the timings each top's simulated cycles, seconds and rate."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {
            top: pool.submit(simulate_trace, trace_path, trace, sim, top, chunk=chunk,
                             waves_dir=waves_dir, stalls=stalls, progress=progress)
            for top in ("frontend", "engine")
        }
        measured = {top: future.result() for top, future in running.items()}
    mismatches = sum(m["mismatches"] for m in measured.values())
    figures = report.report(
        trace.config, trace.problems(), measured["frontend"]["problem_cycles"],
        measured["engine"]["problem_cycles"], mismatches=mismatches,
    )
    timings = {
        top: {
            "simulator": sim,
            "simulated_cycles": m["sim_cycles"],
            "simulation_seconds": round(m["sim_seconds"], 3),
            "cycles_per_second": round(m["sim_cycles"] / max(m["sim_seconds"], 1e-9)),
            "build_seconds": round(m["build_seconds"], 3),
        }
        for top, m in measured.items()
    }
    return figures, timings, measured
