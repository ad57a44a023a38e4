"""A simulation plan (top, traces, modes, stall settings) executed on any simulator access, with every
result checked against the golden and cycle models. The same plan runs under Amaranth's simulator
(``verif/amaranth_sim.py``) and under cocotb on the emitted Verilog (``verif/cocotb_bench.py``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from leopard.hw.config import EngineConfig
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file
from leopard.verif import check
from leopard.verif.access import SimAccess
from leopard.verif.bench import Bench

MODES = ("early_termination", "dense")


def make_plan(cfg: EngineConfig, runs: list[dict[str, Any]], *, top: str = "engine") -> dict[str, Any]:
    """A plan: ``runs`` items hold ``trace`` (a path, made absolute: simulators run in a scratch folder)
    and optionally ``problems`` (indices), ``modes``, ``batches`` (jobs per problem), ``idle``,
    ``backpressure`` (probabilities) and ``seed``."""
    defaults = {"problems": None, "modes": list(MODES), "batches": 1, "idle": 0.0, "backpressure": 0.0,
                "seed": 0}
    resolved = [{**defaults, **run, "trace": str(Path(run["trace"]).resolve())} for run in runs]
    return {"config": cfg.to_dict(), "top": top, "runs": resolved}


async def execute(plan: dict[str, Any], sim: SimAccess) -> dict[str, Any]:
    """Run every job of ``plan``; return per-run, per-mode cycles and mismatches (JSON-ready)."""
    cfg = EngineConfig.from_dict(plan["config"])
    top = plan["top"]
    started = time.perf_counter()
    outcome: dict[str, Any] = {"runs": [], "mismatches": 0, "messages": [], "sim_cycles": 0}
    first = True
    for run in plan["runs"]:
        trace = trace_file.load(run["trace"])
        if not trace.config.computes_like(cfg):
            raise ValueError(f"trace {run['trace']} holds problems of another config than the simulated one")
        problems = trace.problems()
        indices = run["problems"] if run["problems"] is not None else range(problems.count)
        stall_free = run["idle"] == 0 and run["backpressure"] == 0
        bench = Bench(cfg, sim, top=top, seed=run["seed"], idle=run["idle"], backpressure=run["backpressure"])
        if first:
            await bench.reset_inputs()
            first = False
        summary: dict[str, Any] = {"trace": run["trace"], "stall_free": stall_free}
        for mode in run["modes"]:
            dense = mode == "dense"
            expected = golden.run(cfg, problems, dense=dense)
            comparison = check.Comparison()
            per_problem = []
            for p in indices:
                result = await check.run_problem(bench, problems, int(p), dense=dense, batches=run["batches"])
                before = comparison.cycles
                check.compare(result, expected, cfg, top, comparison, check_cycles=stall_free)
                per_problem.append(comparison.cycles - before)
            summary[mode] = {
                "cycles": comparison.cycles,
                "model_cycles": comparison.expected_cycles,
                "problem_cycles": per_problem,
                "mismatches": comparison.mismatches,
            }
            outcome["mismatches"] += comparison.mismatches
            outcome["messages"].extend(comparison.messages)
        outcome["sim_cycles"] += bench.cycles_run
        outcome["runs"].append(summary)
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    return outcome
