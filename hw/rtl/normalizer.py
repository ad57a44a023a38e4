"""The normalizer: one reciprocal per query, the output vector, and the kept keys' probabilities."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import fixedpoint, layouts
from leopard.hw.config import EngineConfig
from leopard.hw.rtl.arith import round_shift
from leopard.hw.rtl.softmax_pass import exponent_address_bits, result_layouts


def leading_one(m: Module, value: Signal, width: int) -> Signal:
    """``⌊log2 value⌋`` for ``value > 0`` (0 for 0), combinational."""
    position = Signal(range(max(width, 2)))
    for bit in range(width):
        with m.If(value[bit]):
            m.d.comb += position.eq(bit)
    return position


def following(value: Signal, count: int) -> Mux:
    """``value + 1`` modulo ``count``."""
    return Mux(value == count - 1, 0, value + 1)


class Normalizer(wiring.Component):
    """Turns each full result buffer, in order, into one packet on ``out``: a beat per kept key with
    its probability ``p_j = round(e_j·R / 2**(Rb+k−Fp))``, the last beat also carrying the output
    vector ``o_d = round(A_d·R / 2**(Rb+k−Fo))`` (``docs/arithmetic.md`` §4). A query with no kept key
    sends one beat with ``has_key`` low and the zero vector.

    Timing: a buffer's lookup starts the first cycle it is ``full`` and the previous lookup is over;
    it takes ``1 + head_dim/v_lanes`` cycles (leading one and reciprocal table, then one group of
    outputs per cycle) and the buffer is ready the cycle after. Its first beat follows one cycle after
    it is ready or right after the previous packet's last beat, whichever is later; the packet has
    ``max(n, 1)`` beats; the buffer is ``drained`` with the last beat.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "clear": In(1),
            "full": In(cfg.result_buffers),
            "drained": Out(cfg.result_buffers),
            **{name: In(layout) for name, layout in result_layouts(cfg).items()},
            "exp_read": In(memory.ReadPort.Signature(
                addr_width=exponent_address_bits(cfg), shape=layouts.weighted_key(cfg))),
            "out": Out(stream.Signature(layouts.output_packet(cfg))),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        looked, octave, recip, vector = self._lookup(m)
        self._emit(m, looked, octave, recip, vector)
        return m

    def _pick(self, m: Module, view: data.View, which: Signal) -> Signal:
        """Element ``which`` of a per-buffer ``view``."""
        chosen = Signal(view.shape().elem_shape)
        m.d.comb += chosen.eq(Array(Value.cast(view[b]) for b in range(self._cfg.result_buffers))[which])
        return chosen

    def _lookup(self, m: Module) -> tuple[Signal, list[Signal], list[Signal], list[data.View]]:
        """Per full buffer, in order: the leading one of ``S`` and ``RECIP`` of its mantissa, then the
        output vector one ``v_lanes`` group per cycle; returns which buffers are looked up and each
        buffer's octave, reciprocal and vector."""
        cfg = self._cfg
        buffers = cfg.result_buffers
        groups, width = cfg.v_groups, cfg.head_dim // cfg.v_groups
        rx, rb = cfg.recip_index_bits, cfg.recip_bits
        table = memory.Memory(shape=rb, depth=1 << rx, init=fixedpoint.recip_table(cfg).tolist())
        m.submodules.recip_table = table
        lookup = table.read_port()

        looked = Signal(buffers)
        lsel = Signal(range(buffers))
        lstep = Signal(range(groups + 2))
        total = self._pick(m, self.total, lsel)
        k_now = leading_one(m, total, cfg.sum_bits)
        below = Signal(range(cfg.sum_bits))
        m.d.comb += [below.eq(k_now - rx), lookup.addr.eq((total >> below)[:rx])]
        octave = [Signal(range(cfg.sum_bits), name=f"octave{b}") for b in range(buffers)]
        recip = [Signal(rb, name=f"recip{b}") for b in range(buffers)]
        vector = [Signal(data.ArrayLayout(signed(cfg.out_bits), cfg.head_dim), name=f"vector{b}")
                  for b in range(buffers)]
        k_held = Signal(range(cfg.sum_bits))
        shift_out = Signal(range(rb + cfg.sum_bits))
        m.d.comb += [lookup.en.eq(lstep == 0), shift_out.eq(rb + k_held - cfg.out_frac_bits)]
        looking = self.full.bit_select(lsel, 1) & ~looked.bit_select(lsel, 1)
        acc = [self._pick(m, self.acc, lsel)[i] for i in range(cfg.head_dim)]
        zero = self._pick(m, self.count, lsel) == 0
        with m.If(self.clear):
            m.d.sync += [lstep.eq(0), lsel.eq(0)]
        with m.Elif((lstep == 0) & looking):
            m.d.sync += [lstep.eq(1), k_held.eq(k_now)]
        with m.Elif(lstep != 0):
            for g in range(groups):
                with m.If(lstep == g + 1):
                    for d in range(width):
                        element = g * width + d
                        rounded = round_shift(m, acc[element] * lookup.data, shift_out, name=f"out{element}")
                        for b in range(buffers):
                            with m.If(lsel == b):
                                m.d.sync += vector[b][element].eq(Mux(zero, 0, rounded))
            with m.If(lstep == groups):
                for b in range(buffers):
                    with m.If(lsel == b):
                        m.d.sync += [octave[b].eq(k_held), recip[b].eq(lookup.data)]
                m.d.sync += [lstep.eq(0), lsel.eq(following(lsel, buffers))]
            with m.Else():
                m.d.sync += lstep.eq(lstep + 1)
        for b in range(buffers):
            with m.If(self.clear | self.drained[b]):
                m.d.sync += looked[b].eq(0)
            with m.Elif((lstep == groups) & (lsel == b)):
                m.d.sync += looked[b].eq(1)
        return looked, octave, recip, vector

    def _emit(
        self, m: Module, looked: Signal, octave: list[Signal], recip: list[Signal], vector: list[data.View]
    ) -> None:
        """One beat per kept key (at least one per query) on ``out``, the exponent buffer read one beat
        ahead; a buffer is ``drained`` with its packet's last beat."""
        cfg = self._cfg
        buffers = cfg.result_buffers
        rb = cfg.recip_bits
        esel = Signal(range(buffers))
        index = Signal(cfg.length_bits)
        presenting = Signal()
        beats = self._pick(m, self.count, esel)
        last = Signal()
        m.d.comb += last.eq(index + 1 >= beats)
        advance = Signal()
        m.d.comb += advance.eq(~presenting | self.out.ready)
        next_buffer = Signal(range(buffers))
        next_index = Signal(cfg.length_bits)
        next_presenting = Signal()
        with m.If(presenting & ~last):
            m.d.comb += [next_buffer.eq(esel), next_index.eq(index + 1), next_presenting.eq(1)]
        with m.Elif(presenting):
            m.d.comb += [next_buffer.eq(following(esel, buffers)), next_index.eq(0),
                         next_presenting.eq(looked.bit_select(following(esel, buffers), 1))]
        with m.Else():
            m.d.comb += [next_buffer.eq(esel), next_index.eq(0),
                         next_presenting.eq(looked.bit_select(esel, 1))]
        m.d.comb += [
            self.exp_read.addr.eq(Cat(next_index[:cfg.index_bits], next_buffer)),
            self.exp_read.en.eq(advance),
        ]
        with m.If(self.clear):
            m.d.sync += [presenting.eq(0), esel.eq(0), index.eq(0)]
        with m.Elif(advance):
            m.d.sync += [presenting.eq(next_presenting), esel.eq(next_buffer), index.eq(next_index)]
        done = presenting & last & self.out.ready
        m.d.comb += self.drained.eq(Mux(done, Const(1, buffers) << esel, 0))

        word = self.exp_read.data
        shift_p = Signal(range(rb + cfg.sum_bits))
        m.d.comb += shift_p.eq(rb + Array(octave)[esel] - cfg.prob_frac_bits)
        has_key = beats != 0
        packet = self.out.payload
        m.d.comb += [
            self.out.valid.eq(presenting),
            packet.query.eq(self._pick(m, self.query, esel)),
            packet.kept.eq(beats),
            packet.has_key.eq(has_key),
            packet.key.eq(Mux(has_key, word.key, 0)),
            packet.prob.eq(Mux(has_key, round_shift(m, word.exp * Array(recip)[esel], shift_p, name="p"), 0)),
            packet.last.eq(last),
            packet.vector.eq(Mux(last, Array(Value.cast(v) for v in vector)[esel], 0)),
        ]
