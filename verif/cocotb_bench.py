"""cocotb test of the emitted Verilog (engine or front end): runs the plan in ``$LEOPARD_PLAN``
(``verif/plan.py``) and writes the checked results to ``$LEOPARD_RESULTS``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from leopard.hw.files import write_json
from leopard.verif import plan as sim_plan
from leopard.verif.access import CocotbAccess


async def start(dut: Any) -> CocotbAccess:
    """Start a 100 MHz clock, hold reset for two cycles, return at a falling edge."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    return CocotbAccess(dut)


@cocotb.test()
async def run_plan(dut: Any) -> None:
    plan = json.loads(Path(os.environ["LEOPARD_PLAN"]).read_text())
    outcome = await sim_plan.execute(plan, await start(dut))
    write_json(os.environ["LEOPARD_RESULTS"], outcome)
    assert outcome["mismatches"] == 0, "; ".join(outcome["messages"][:5])
