"""A trace run on the emitted Verilog (``leopard sim``): every problem on the front end and on the
engine, in both modes, on the trace player (``verif/player_sim.py``), the launches of both tops as
points on a ``fanout.Pool`` (Dask workers); the golden model runs once for the whole trace, is sent to
every worker once, and every launch is checked against it. Returns the report of ``leopard sim`` and
its timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leopard.hw import fanout
from leopard.hw.config import EngineConfig
from leopard.hw.resources import check_memory
from leopard.model.reference import golden, report
from leopard.model.reference import trace as trace_file
from leopard.verif import playback, player_sim

Progress = Callable[[str], None]
STALLS = {"idle": 0.3, "backpressure": 0.5, "batches": 2}
"""The stalled run ``--stalls`` adds (early termination, values checked, cycles not)."""
TOPS = ("frontend", "engine")


@dataclass(frozen=True)
class Plan:
    """One top's launches: the workloads of at most ``chunk`` problems with their program words, and the
    player build."""

    top: str
    parts: list[tuple[playback.Workload, int]]
    compiled: player_sim.PlayerBuild


def plan(cfg: EngineConfig, problems: golden.Problems, sim: str, top: str, *, chunk: int,
         waves: bool, stalls: bool, depth: int) -> Plan:
    """Every problem on ``top`` in both modes, in launches of at most ``chunk`` problems (one launch with
    waveforms) whose programs fit in ``depth`` words when they can; the player built for them (cached
    by the Verilog's hash)."""
    every = playback.Workload(tuple(range(problems.count)))
    budget = depth // 2 - 1 if stalls else depth - 1
    parts = player_sim.split(cfg, top, problems, every, problems.count if waves else chunk, budget)
    words = max(length for _, length in parts)
    compiled = player_sim.build(cfg, top, sim, waves=waves,
                                depth=player_sim.depth_for(2 * words + 2 if stalls else words + 1))
    return Plan(top, parts, compiled)


def launch_part(cfg: EngineConfig, sim: str, top: str,
                shared: tuple[golden.Problems, dict[str, golden.GoldenResult]], part: playback.Workload,
                index: int, *, compiled: player_sim.PlayerBuild, waves_dir: Path | None, stalls: bool
                ) -> dict[str, Any]:
    """One launch of ``part`` (and its stalled run with ``stalls``) of the problems and their golden
    results ``shared``: ``player_sim.launch``'s outcome."""
    problems, expected = shared
    segments = [player_sim.Segment(problems, expected, part)]
    if stalls:
        segments.append(player_sim.Segment(problems, expected, playback.Workload(
            part.problems, modes=("early_termination",), seed=index, **STALLS)))
    return player_sim.launch(cfg, top, sim, segments, compiled=compiled, waves_dir=waves_dir)


def _totals(outcomes: list[dict[str, Any]], build_seconds: float, core_sha256: str) -> dict[str, Any]:
    """One top's launches added up in launch order: the measured cycles per problem and mode,
    mismatches, messages, failed problems and the simulator's time."""
    totals: dict[str, Any] = {
        "problem_cycles": {mode: [] for mode in playback.MODES}, "mismatches": 0, "messages": [],
        "failed": [], "job_cycles": 0, "sim_cycles": 0, "load_seconds": 0.0, "run_seconds": 0.0,
        "check_seconds": 0.0, "build_seconds": build_seconds, "core_sha256": core_sha256,
    }
    for outcome in outcomes:
        for mode in playback.MODES:
            totals["problem_cycles"][mode].extend(outcome["segments"][0][mode]["problem_cycles"])
        for key in ("mismatches", "job_cycles", "sim_cycles", "load_seconds", "run_seconds", "check_seconds"):
            totals[key] += outcome[key]
        totals["messages"].extend(outcome["messages"])
        totals["failed"].extend(p for p in outcome["failed"] if p not in totals["failed"])
        if "waves" in outcome:
            totals["waves"] = outcome["waves"]
    return totals


def _rate(outcome: dict[str, Any]) -> str:
    rate = outcome["job_cycles"] / max(outcome["run_seconds"], 1e-9)
    return f"{outcome['mismatches']} mismatches, {rate:,.0f} job cycles/s"


BYTES_PER_PAIR = 480
"""Peak memory of ``leopard sim`` per padded query–key pair (golden results of both modes for both tops,
the players' programs and the results read back); measured: 420 bytes on 512 problems of 64 tokens."""


def simulate_trace_file(
    trace: trace_file.Trace, sim: str, *, chunk: int, waves_dir: Path | None, stalls: bool,
    progress: Progress, depth: int = player_sim.PROGRAM_DEPTH, pool: fanout.Pool | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """Both tops on every problem: ``(report, timings, per-top totals)``; the report has ``leopard
    golden``'s keys and ``mismatches``, the timings each top's cycles, seconds and rates."""
    pool = pool or fanout.Pool(1)
    local = not pool.serial and pool.scheduler is None
    copies = 1 + pool.workers if local else 1
    check_memory(BYTES_PER_PAIR * copies * trace.count * trace.length ** 2,
                 f"simulating {trace.count} problems of {trace.length} tokens"
                 + (f" here and on {pool.workers} workers" if local else ""),
                 "split the trace into smaller files" + (" or use fewer --workers" if local else ""))
    with pool:
        pool.warm(__name__)
        cfg, problems = trace.config, trace.problems()
        expected = player_sim.expected_results(cfg, problems)
        plans = []
        for top in TOPS:
            started = time.perf_counter()
            progress(f"building the trace player around the {sim} model of {top} (cached by the Verilog's "
                     "hash)")
            plans.append((plan(cfg, problems, sim, top, chunk=chunk, waves=waves_dir is not None,
                               stalls=stalls, depth=depth), time.perf_counter() - started))
        shared = pool.share((problems, expected))
        points = [
            fanout.Point(f"{sim} {each.top}: problems {part.problems[0]}..{part.problems[-1]} of "
                         f"{problems.count}", launch_part,
                         (cfg, sim, each.top, shared, part, index),
                         {"compiled": each.compiled, "waves_dir": waves_dir, "stalls": stalls}, cost=words)
            for each, _ in plans for index, (part, words) in enumerate(each.parts, 1)
        ]
        progress(f"{len(points)} launches on {pool.describe()}")
        outcomes = fanout.values(pool.run(points, progress, what="launches", summary=_rate), "launches")
    measured, first = {}, 0
    for each, seconds in plans:
        mine = outcomes[first:first + len(each.parts)]
        first += len(each.parts)
        measured[each.top] = _totals(mine, seconds, each.compiled.core_sha256)
    mismatches = sum(m["mismatches"] for m in measured.values())
    figures = report.report(
        cfg, expected["early_termination"], problems.valid_len, measured["frontend"]["problem_cycles"],
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
