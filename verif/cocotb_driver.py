"""cocotb test: the host driver on the emitted engine Verilog against the driver on the golden
backend, for the trace in ``$LEOPARD_PLAN``; the comparison goes to ``$LEOPARD_RESULTS``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cocotb

from leopard.hw.files import write_json
from leopard.model.reference import trace as trace_file
from leopard.verif.bench import Bench
from leopard.verif.cocotb_bench import start
from leopard.verif.driver_check import compare_backends


@cocotb.test()
async def driver_on_rtl_equals_golden(dut: Any) -> None:
    plan = json.loads(Path(os.environ["LEOPARD_PLAN"]).read_text())
    trace = trace_file.load(plan["trace"])
    bench = Bench(trace.config, await start(dut))
    await bench.reset_inputs()
    outcome = await compare_backends(trace, bench)
    write_json(os.environ["LEOPARD_RESULTS"], outcome)
    assert not outcome["differences"], outcome["differences"][:5]
