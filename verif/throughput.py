"""Simulation throughput (``leopard bench-sim``): the same synthetic workload on the trace player under
Amaranth's simulator, Icarus and Verilator, front end and engine, every value checked.

The rate that counts is job cycles per wall second: the ``CYCLES`` counter summed over the stall-free
jobs of both modes, divided by the wall seconds of the simulation (builds and program loading
excluded); all clocked cycles per second and the share of a launch's wall time spent outside the
simulator (start-up, loading, checking) are reported beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model.reference import synthetic
from leopard.verif import playback, player_sim, simulate

TOPS = ("frontend", "engine")


def simulator_rates(
    cfg: EngineConfig, *, problems: int, length: int, simulators: tuple[str, ...],
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per simulator and top: job cycles, clocked cycles, seconds and rates."""
    trace = synthetic.random_trace(cfg, seed=0, problems=problems, length=length, prune_fraction=0.8)
    batch = trace.problems()
    expected = player_sim.expected_results(cfg, batch)
    segment = player_sim.Segment(batch, expected, playback.Workload(tuple(range(batch.count))))
    rows = []
    for sim in simulators:
        if sim != "amaranth":
            simulate.check_simulator(sim)
        for top in TOPS:
            compiled, build_seconds = None, 0.0
            if sim != "amaranth":
                progress(f"building the trace player around the {top} for {sim} (cached)")
                started = time.perf_counter()
                words = len(playback.compile_program(cfg, top, batch, segment.work).words) + 1
                compiled = player_sim.build(cfg, top, sim, depth=player_sim.depth_for(words))
                build_seconds = time.perf_counter() - started
            progress(f"simulating {problems} problems of {length} tokens on the {top} under {sim}")
            started = time.perf_counter()
            outcome = player_sim.launch(cfg, top, sim, [segment], compiled=compiled)
            wall = time.perf_counter() - started
            if outcome["mismatches"]:
                raise LeopardError(f"{sim} {top} disagreed with the golden model: {outcome['messages'][:3]}")
            run = outcome["run_seconds"]
            rows.append({
                "simulator": sim, "top": top, "job_cycles": outcome["job_cycles"],
                "clocked_cycles": outcome["sim_cycles"], "simulation_seconds": round(run, 3),
                "wall_seconds": round(wall, 3), "build_seconds": round(build_seconds, 3),
                "job_cycles_per_second": round(outcome["job_cycles"] / run),
                "clocked_cycles_per_second": round(outcome["sim_cycles"] / run),
                "outside_share": round(1 - run / wall, 3),
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| simulator | top | job cycles | job cycles/s | clocked cycles/s | simulation s | wall s "
             "| outside the simulator | build s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['simulator']} | {r['top']} | {r['job_cycles']:,} | {r['job_cycles_per_second']:,} | "
              f"{r['clocked_cycles_per_second']:,} | {r['simulation_seconds']:.2f} | "
              f"{r['wall_seconds']:.2f} | {r['outside_share']:.0%} | {r['build_seconds']:.1f} |"
              for r in rows]
    return "\n".join(lines) + "\n"
