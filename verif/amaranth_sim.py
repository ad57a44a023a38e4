"""Running a simulation plan in Amaranth's own simulator (no Verilog, no build)."""

from __future__ import annotations

from typing import Any

from amaranth.sim import Simulator

from leopard.hw.config import EngineConfig
from leopard.hw.rtl.generate import top_component
from leopard.verif import plan as sim_plan
from leopard.verif.access import AmaranthAccess


def run_plan(cfg: EngineConfig, plan: dict[str, Any]) -> dict[str, Any]:
    """Execute ``plan`` (``verif/plan.py``) on its top built from ``cfg``; return its checked results."""
    _, dut = top_component(cfg, plan["top"])
    outcome: dict[str, Any] = {}

    async def bench(ctx: Any) -> None:
        outcome.update(await sim_plan.execute(plan, AmaranthAccess(ctx, dut)))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return outcome
