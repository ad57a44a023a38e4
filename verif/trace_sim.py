"""A trace run on the emitted Verilog (``leopard sim``): every problem on the front end and on the
engine, in both modes, on the trace player (``verif/player_sim.py``), the two tops in parallel; the
golden model runs once for the whole trace and every launch is checked against it. Returns the report
of ``leopard sim`` and its timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from leopard.hw.resources import check_memory
from leopard.model.reference import golden, report
from leopard.model.reference import trace as trace_file
from leopard.verif import playback, player_sim

Progress = Callable[[str], None]
STALLS = {"idle": 0.3, "backpressure": 0.5, "batches": 2}
"""The stalled run ``--stalls`` adds (early termination, values checked, cycles not)."""


def simulate_trace(
    trace: trace_file.Trace, sim: str, top: str, *, chunk: int, waves_dir: Path | None, stalls: bool,
    expected: dict[str, golden.GoldenResult], progress: Progress, depth: int = player_sim.PROGRAM_DEPTH,
) -> dict[str, Any]:
    """Every problem of ``trace`` on ``top`` in both modes, in launches of at most ``chunk`` problems
    (one launch with waveforms) whose programs fit in ``depth`` words when they can; the measured
    cycles per problem and mode, mismatches, messages and the simulator's time and rate."""
    cfg, problems = trace.config, trace.problems()
    every = playback.Workload(tuple(range(problems.count)))
    budget = depth // 2 - 1 if stalls else depth - 1
    parts = player_sim.split(cfg, top, problems, every, problems.count if waves_dir else chunk, budget)
    started = time.perf_counter()
    progress(f"building the trace player around the {sim} model of {top} (cached by the Verilog's hash)")
    words = max(length for _, length in parts)
    compiled = player_sim.build(cfg, top, sim, waves=waves_dir is not None,
                                depth=player_sim.depth_for(2 * words + 2 if stalls else words + 1))
    totals: dict[str, Any] = {
        "problem_cycles": {mode: [] for mode in playback.MODES}, "mismatches": 0, "messages": [],
        "failed": [], "job_cycles": 0, "sim_cycles": 0, "load_seconds": 0.0, "run_seconds": 0.0,
        "check_seconds": 0.0,
        "build_seconds": time.perf_counter() - started, "core_sha256": compiled.core_sha256,
    }
    for index, (part, _) in enumerate(parts, 1):
        segments = [player_sim.Segment(problems, expected, part)]
        if stalls:
            segments.append(player_sim.Segment(problems, expected, playback.Workload(
                part.problems, modes=("early_termination",), seed=index, **STALLS)))
        outcome = player_sim.launch(cfg, top, sim, segments, compiled=compiled, waves_dir=waves_dir)
        for mode in playback.MODES:
            totals["problem_cycles"][mode].extend(outcome["segments"][0][mode]["problem_cycles"])
        for key in ("mismatches", "job_cycles", "sim_cycles", "load_seconds", "run_seconds", "check_seconds"):
            totals[key] += outcome[key]
        totals["messages"].extend(outcome["messages"])
        totals["failed"].extend(p for p in outcome["failed"] if p not in totals["failed"])
        if "waves" in outcome:
            totals["waves"] = outcome["waves"]
        rate = outcome["job_cycles"] / max(outcome["run_seconds"], 1e-9)
        progress(f"[{index}/{len(parts)}] {sim} {top}: problems {part.problems[0]}..{part.problems[-1]} "
                 f"of {problems.count}, {outcome['mismatches']} mismatches, {rate:,.0f} job cycles/s")
    return totals

BYTES_PER_PAIR = 480
"""Peak memory of ``leopard sim`` per padded query–key pair (golden results of both modes for both tops,
the players' programs and the results read back); measured: 420 bytes on 512 problems of 64 tokens."""


def simulate_trace_file(
    trace: trace_file.Trace, sim: str, *, chunk: int, waves_dir: Path | None, stalls: bool,
    progress: Progress, depth: int = player_sim.PROGRAM_DEPTH,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """Both tops on every problem: ``(report, timings, per-top totals)``; the report has ``leopard
    golden``'s keys and ``mismatches``, the timings each top's cycles, seconds and rates."""
    check_memory(BYTES_PER_PAIR * trace.count * trace.length ** 2,
                 f"simulating {trace.count} problems of {trace.length} tokens",
                 "split the trace into smaller files")
    expected = player_sim.expected_results(trace.config, trace.problems())
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {
            top: pool.submit(simulate_trace, trace, sim, top, chunk=chunk, waves_dir=waves_dir,
                             stalls=stalls, expected=expected, progress=progress, depth=depth)
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
            "core_sha256": m["core_sha256"],
            "job_cycles": m["job_cycles"],
            "simulated_cycles": m["sim_cycles"],
            "load_seconds": round(m["load_seconds"], 3),
            "simulation_seconds": round(m["run_seconds"], 3),
            "check_seconds": round(m["check_seconds"], 3),
            "job_cycles_per_second": round(m["job_cycles"] / max(m["run_seconds"], 1e-9)),
            "cycles_per_second": round(m["sim_cycles"] / max(m["run_seconds"], 1e-9)),
            "build_seconds": round(m["build_seconds"], 3),
        }
        for top, m in measured.items()
    }
    return figures, timings, measured
