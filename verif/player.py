"""The trace player: a testbench in hardware around a top (the emitted Verilog, or the Amaranth
component itself), so a simulator runs a whole workload with no per-cycle work in Python.

A program of commands (``Op``) is loaded into the player's program memory through its ``load`` port
before ``go``; the player then executes it, one command after another:

- ``WRITE`` (one cycle) and ``READ`` (one cycle; the data is printed the cycle after) on the register
  bus;
- ``PUSH_Q``, ``PUSH_K``, ``PUSH_V``: offer one beat on that stream until the top takes it, idle in the
  cycles in which the stream's LFSR falls below ``idle``;
- ``WAIT``: until the top has not been busy nor offered an output beat for ``DRAIN_CYCLES`` cycles;
- ``STALLS`` (one cycle): take the idle and back-pressure thresholds (16 bits each, a probability times
  2**16) and reseed every stream's LFSR;
- ``END``: raise ``finished`` (and print ``E <cycle>``).

Every output stream is taken in the cycles in which its LFSR is at or above the back-pressure threshold
(always, when it is 0). Every bus write, bus read and output beat taken is printed as one line
``<tag> <cycle> <hex>…`` (``Print``: ``$write`` in the Verilog), stamped with the cycle counted from
reset, and ``verif/playback.py`` turns the lines back into job results.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Cat, Format, Module, Mux, Print, Shape, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw.config import EngineConfig
from leopard.hw.regmap import register_map

DRAIN_CYCLES = 4
"""Cycles with the top idle and nothing offered on its outputs after which a job is over (more than
the output FIFOs' write-to-read latency)."""
LFSR_BITS = 16
STAMP_BITS = 32
INPUTS = {"q": "Q", "k": "K", "v": "V"}
OUTPUTS = {"kept": "k", "status": "s", "out": "o"}
"""The streams a top may have, and the tag of their lines."""


class Op(enum.IntEnum):
    END = 0
    WRITE = 1
    READ = 2
    PUSH_Q = 3
    PUSH_K = 4
    PUSH_V = 5
    WAIT = 6
    STALLS = 7


def streams(signature: wiring.Signature) -> tuple[list[str], list[str]]:
    """The top's input and output streams, in signature order."""
    members = signature.members
    return [n for n in INPUTS if n in members], [n for n in OUTPUTS if n in members]


def command_layout(cfg: EngineConfig, signature: wiring.Signature) -> data.StructLayout:
    """A program word: the ``op`` and its argument (bus address and data, or a stream payload)."""
    regs = register_map(cfg)
    inputs, _ = streams(signature)
    widths = [regs.addr_width + regs.data_width, 3 * LFSR_BITS]
    widths += [Shape.cast(signature.members[n].signature.members["payload"].shape).width for n in inputs]
    return data.StructLayout({"op": Shape.cast(range(len(Op))), "arg": max(widths)})


class _Lfsr:
    """A 16-bit Fibonacci LFSR (taps 16, 14, 13, 11: maximal length) stepping every cycle; while
    ``load`` it holds ``seed`` xor a per-stream constant (never all zeros)."""

    def __init__(self, m: Module, seed: Signal, load: Signal, salt: int, name: str) -> None:
        self.state = Signal(LFSR_BITS, name=f"{name}_lfsr")
        feedback = self.state[15] ^ self.state[13] ^ self.state[12] ^ self.state[10]
        start = seed ^ salt
        with m.If(load):
            m.d.sync += self.state.eq(Mux(start == 0, 1, start))
        with m.Else():
            m.d.sync += self.state.eq(Cat(feedback, self.state[:-1]))


class TracePlayer(wiring.Component):
    """Runs a loaded program against ``core`` (a top with the signature ``top_signature(cfg, top)``).

    Ports: ``load_en`` writes ``load_data`` at ``load_addr`` of the program memory (``depth`` words);
    ``go`` starts the program at word 0; ``finished`` rises with ``END``. ``program``, when given, is
    the memory's initial content (Amaranth's simulator needs no load phase)."""

    def __init__(
        self, cfg: EngineConfig, core: wiring.Component, *, depth: int, program: list[int] | None = None
    ) -> None:
        self._cfg = cfg
        self._core = core
        self._depth = depth
        self._init = program or []
        self._layout = command_layout(cfg, core.signature)
        super().__init__({
            "load_en": In(1),
            "load_addr": In(range(depth)),
            "load_data": In(Shape.cast(self._layout).width),
            "go": In(1),
            "finished": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        cfg, core = self._cfg, self._core
        regs = register_map(cfg)
        inputs, outputs = streams(core.signature)
        m = Module()
        m.submodules.core = core
        width = Shape.cast(self._layout).width
        m.submodules.program = program = memory.Memory(shape=width, depth=self._depth, init=self._init)
        write = program.write_port()
        read = program.read_port()
        m.d.comb += [write.en.eq(self.load_en), write.addr.eq(self.load_addr), write.data.eq(self.load_data)]

        stamp = Signal(STAMP_BITS)
        m.d.sync += stamp.eq(stamp + 1)
        running = Signal()
        pc = Signal(range(self._depth))
        advance = Signal()
        word = data.View(self._layout, read.data)
        m.d.comb += read.addr.eq(Mux(advance, pc + 1, pc))
        with m.If(self.go & ~running & ~self.finished):
            m.d.sync += running.eq(1)
        with m.Elif(advance):
            m.d.sync += pc.eq(pc + 1)
        executing = running & ~self.finished

        bus = core.bus
        address = word.arg[:regs.addr_width]
        m.d.comb += bus.addr.eq(address)
        reading = Signal()
        read_addr = Signal(regs.addr_width)
        m.d.sync += [reading.eq(0)]
        with m.If(reading):
            m.d.sync += Print(Format("R {:x} {:x} {:x}", stamp, read_addr, bus.r_data))

        quiet = Signal(range(DRAIN_CYCLES + 1))
        offered = Cat(*(getattr(core, name).valid for name in outputs)).any()
        with m.If(core.busy | offered):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != DRAIN_CYCLES):
            m.d.sync += quiet.eq(quiet + 1)

        idle, backpressure, seed = (Signal(LFSR_BITS, name=n) for n in ("idle", "backpressure", "seed"))
        reseed = Signal()
        m.d.comb += reseed.eq(executing & (word.op == Op.STALLS))
        with m.If(reseed):
            m.d.sync += Cat(idle, backpressure).eq(word.arg[:2 * LFSR_BITS])
        m.d.comb += seed.eq(word.arg[2 * LFSR_BITS:3 * LFSR_BITS])
        offers = {}
        for salt, name in enumerate(inputs, 1):
            lfsr = _Lfsr(m, seed, reseed, 0x1111 * salt, name)
            offers[name] = Signal(name=f"{name}_offer")
            m.d.comb += [
                offers[name].eq(lfsr.state >= idle),
                getattr(core, name).payload.eq(word.arg),
            ]
        for salt, name in enumerate(outputs, 5):
            lfsr = _Lfsr(m, seed, reseed, 0x1111 * salt, name)
            stream = getattr(core, name)
            m.d.comb += stream.ready.eq(lfsr.state >= backpressure)
            with m.If(stream.valid & stream.ready):
                m.d.sync += Print(Format(f"{OUTPUTS[name]} {{:x}} {{:x}}", stamp, stream.payload.as_value()))

        with m.If(executing), m.Switch(word.op):
            with m.Case(Op.END):
                m.d.sync += [self.finished.eq(1), Print(Format("E {:x}", stamp))]
            with m.Case(Op.WRITE):
                data_word = word.arg[regs.addr_width:regs.addr_width + regs.data_width]
                m.d.comb += [bus.w_en.eq(1), bus.w_data.eq(data_word), advance.eq(1)]
                m.d.sync += Print(Format("W {:x} {:x} {:x}", stamp, address, data_word))
            with m.Case(Op.READ):
                m.d.comb += [bus.r_en.eq(1), advance.eq(1)]
                m.d.sync += [reading.eq(1), read_addr.eq(address)]
            for name in inputs:
                with m.Case(Op[f"PUSH_{INPUTS[name]}"]):
                    stream = getattr(core, name)
                    m.d.comb += [stream.valid.eq(offers[name]), advance.eq(offers[name] & stream.ready)]
            with m.Case(Op.WAIT):
                m.d.comb += advance.eq(quiet == DRAIN_CYCLES)
            with m.Case(Op.STALLS):
                m.d.comb += advance.eq(1)
        return m
