"""Running Amaranth components in Amaranth's simulator."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.sim import Simulator


def simulate(dut, bench: Callable, *, clock: bool = True) -> None:
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
