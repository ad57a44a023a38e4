"""Simulation throughput: the same synthetic trace on Amaranth's simulator, Icarus and Verilator."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.rtl.generate import verilog_text
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.verif import simulate
from leopard.verif.amaranth_sim import run_plan
from leopard.verif.plan import make_plan


def simulator_rates(
    cfg: EngineConfig, *, problems: int, length: int, progress: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Per simulator: the simulated cycles, the wall seconds and their ratio, every value checked."""
    trace = synthetic.random_trace(cfg, seed=0, problems=problems, length=length,
                                   prune_fraction=0.8)
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch) / "bench.npz")
        trace_file.save(trace, path)
        plan = make_plan(cfg, [{"trace": path}])
        for sim in ("amaranth", *simulate.SIMULATORS):
            progress(f"simulating on {sim}")
            if sim == "amaranth":
                outcome = run_plan(cfg, plan)
            else:
                simulate.check_simulator(sim)
                module, source = verilog_text(cfg)
                outcome = simulate.run(simulate.build(module, source, sim), simulate.COCOTB_BENCH, plan)
            if outcome["mismatches"]:
                raise LeopardError(f"{sim} disagreed with the golden model: {outcome['messages'][:3]}")
            rows[sim] = {
                "simulated_cycles": outcome["sim_cycles"],
                "seconds": outcome["seconds"],
                "cycles_per_second": round(outcome["sim_cycles"] / outcome["seconds"]),
            }
    return rows
