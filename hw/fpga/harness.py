"""Wrappers that put a generated Verilog core on an FPGA: ``VerilogCore`` instantiates the module that
``leopard generate`` writes (the one source of truth), ``SerialHarness`` reaches all of its ports
through five pins so that place and route can time a core with far more ports than a package has pins.
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Instance,
    Module,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

HARNESS_PINS = ("shift_in", "shift", "update", "capture", "shift_out")
"""The harness's own pins (besides ``clk`` and ``rst``)."""


def port_bits(component: wiring.Component) -> tuple[list[Value], list[Value]]:
    """The component's input and output port values, in signature order."""
    inputs: list[Value] = []
    outputs: list[Value] = []
    for _, member, value in component.signature.flatten(component):
        (inputs if member.flow == In else outputs).append(Value.cast(value))
    return inputs, outputs


class VerilogCore(wiring.Component):
    """An instance of the Verilog module ``name`` (source ``source``), with the signature of the
    Amaranth component it was generated from: ports are the signature paths joined with ``__``, plus
    ``clk`` and ``rst`` of the ``sync`` domain. Adds the source to the platform when there is one."""

    def __init__(self, name: str, source: str, signature: wiring.Signature) -> None:
        self._name = name
        self._source = source
        super().__init__(signature)

    @property
    def source(self) -> str:
        return self._source

    def elaborate(self, platform: object) -> Module:
        m = Module()
        if platform is not None:
            platform.add_file(f"{self._name}.v", self._source)
        ports: list[tuple[str, str, Value]] = [("i", "clk", ClockSignal()), ("i", "rst", ResetSignal())]
        for path, member, value in self.signature.flatten(self):
            ports.append(("i" if member.flow == In else "o", "__".join(map(str, path)), Value.cast(value)))
        m.submodules.core = Instance(self._name, *ports)
        return m


class SerialHarness(wiring.Component):
    """Every input and output bit of ``core`` behind two shift registers, registered at both ends so
    that the paths place and route times are the core's own (register to register).

    - ``shift``: both chains move one bit per cycle; ``shift_in`` enters the input chain at its top
      (bit ``n_in − 1``), the output chain's bit 0 is on ``shift_out``.
    - ``update``: the core's inputs take the input chain's value (``n_in`` bits, signature order, the
      first port in the low bits) at the next edge.
    - ``capture``: the output chain loads the core's outputs as registered in the previous cycle.

    The control pins are registered once before use, so each acts one cycle after it is sampled. The
    ``rst`` pin reaches the core through a register (its fan-out is then a register-to-register path
    like the core's own), and the chains have no reset. The harness adds ``2·(n_in + n_out) + 5``
    flip-flops and about ``n_out`` LUTs (the output chain's load multiplexer) to the core.
    """

    def __init__(self, core: wiring.Component) -> None:
        self._core = core
        inputs, outputs = port_bits(core)
        self.input_bits = sum(len(v) for v in inputs)
        self.output_bits = sum(len(v) for v in outputs)
        super().__init__({
            "shift_in": In(1), "shift": In(1), "update": In(1), "capture": In(1), "shift_out": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.domains.core = ClockDomain("core")
        core_reset = Signal(reset_less=True)
        m.d.sync += core_reset.eq(ResetSignal())
        m.d.comb += [ClockSignal("core").eq(ClockSignal()), ResetSignal("core").eq(core_reset)]
        m.submodules.core = DomainRenamer("core")(self._core)
        inputs, outputs = port_bits(self._core)
        n_in, n_out = max(1, self.input_bits), max(1, self.output_bits)
        shift, update, capture, shift_in = (Signal(reset_less=True) for _ in range(4))
        m.d.sync += [
            shift.eq(self.shift), update.eq(self.update), capture.eq(self.capture),
            shift_in.eq(self.shift_in),
        ]
        chain_in = Signal(n_in, reset_less=True)
        held = Signal(n_in, reset_less=True)
        sampled = Signal(n_out, reset_less=True)
        chain_out = Signal(n_out, reset_less=True)
        with m.If(shift):
            m.d.sync += chain_in.eq(Cat(chain_in[1:], shift_in))
        with m.If(update):
            m.d.sync += held.eq(chain_in)
        if inputs:
            m.d.comb += Cat(*inputs).eq(held)
        if outputs:
            m.d.sync += sampled.eq(Cat(*outputs))
        with m.If(capture):
            m.d.sync += chain_out.eq(sampled)
        with m.Elif(shift):
            m.d.sync += chain_out.eq(chain_out >> 1)
        m.d.comb += self.shift_out.eq(chain_out[0])
        return m
