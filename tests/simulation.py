"""Helpers running Amaranth components and plans in Amaranth's simulator."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.sim import Simulator

from leopard.hw.config import EngineConfig
from leopard.hw.frontend import FrontEnd
from leopard.verif import plan as sim_plan
from leopard.verif.access import AmaranthAccess


def simulate(dut, bench: Callable, *, clock: bool = True) -> None:
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_plan(cfg: EngineConfig, plan: dict) -> dict:
    dut = FrontEnd(cfg)
    outcome = {}

    async def bench(ctx):
        outcome.update(await sim_plan.execute(plan, AmaranthAccess(ctx, dut)))

    simulate(dut, bench)
    return outcome
