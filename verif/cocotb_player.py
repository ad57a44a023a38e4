"""cocotb test of the trace player around the emitted Verilog: loads the program in
``$LEOPARD_PLAN`` (``program``: hex words) through the load port, starts it and waits for
``finished``; the player prints what the top did, and the caller reads it from the simulator's output
(``verif/player_sim.py``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from leopard.hw.files import write_json


@cocotb.test()
async def play(dut: Any) -> None:
    plan = json.loads(Path(os.environ["LEOPARD_PLAN"]).read_text())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    dut.rst.value = 1
    dut.go.value = 0
    dut.load_en.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    started = time.perf_counter()
    dut.load_en.value = 1
    for address, word in enumerate(plan["program"]):
        dut.load_addr.value = address
        dut.load_data.value = int(word, 16)
        await RisingEdge(dut.clk)
    dut.load_en.value = 0
    loaded = time.perf_counter()
    dut.go.value = 1
    await RisingEdge(dut.finished)
    await ClockCycles(dut.clk, 1)
    write_json(os.environ["LEOPARD_RESULTS"], {
        "load_seconds": round(loaded - started, 3), "run_seconds": round(time.perf_counter() - loaded, 3),
    })
