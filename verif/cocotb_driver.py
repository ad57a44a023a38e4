"""cocotb test: the host driver on the emitted engine Verilog against the driver on the golden
backend, for the trace in ``$LEOPARD_PLAN``; the comparison goes to ``$LEOPARD_RESULTS``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from leopard.hw.files import write_json
from leopard.model.reference import trace as trace_file
from leopard.verif.access import CocotbAccess
from leopard.verif.bench import Bench
from leopard.verif.driver_check import compare_backends


async def start(dut: Any) -> CocotbAccess:
    """Start a 100 MHz clock, hold reset for two cycles, return at a falling edge."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    return CocotbAccess(dut)


@cocotb.test()
async def driver_on_rtl_equals_golden(dut: Any) -> None:
    plan = json.loads(Path(os.environ["LEOPARD_PLAN"]).read_text())
    trace = trace_file.load(plan["trace"])
    bench = Bench(trace.config, await start(dut))
    await bench.reset_inputs()
    outcome = await compare_backends(trace, bench)
    write_json(os.environ["LEOPARD_RESULTS"], outcome)
    assert not outcome["differences"], outcome["differences"][:5]
