"""The normalizer: one reciprocal per query, the output vector, and the kept keys' probabilities."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.model import fixedpoint

from . import layouts
from .arith import round_shift
from .config import EngineConfig


def leading_one(m: Module, value: Signal, width: int) -> Signal:
    """``⌊log2 value⌋`` for ``value > 0`` (0 for 0), combinational."""
    position = Signal(range(max(width, 2)))
    for bit in range(width):
        with m.If(value[bit]):
            m.d.comb += position.eq(bit)
    return position


class Normalizer(wiring.Component):
    """Turns a full accumulator bank into one packet on ``out``: a beat per kept key with its
    probability ``p_j = round(e_j·R / 2**(Rb+k−Fp))``, the last beat also carrying the output vector
    ``o_d = round(A_d·R / 2**(Rb+k−Fo))`` (``docs/arithmetic.md`` §4). A query with no kept key sends
    one beat with ``has_key`` low and the zero vector.

    Timing: bank ``b``'s lookup starts the first cycle it is ``full`` and the previous lookup is over;
    it takes ``1 + head_dim/v_lanes`` cycles (leading one and reciprocal table, then one group of
    outputs per cycle) and the bank is ready the cycle after. Its first beat follows one cycle after it
    is ready or right after the previous packet's last beat, whichever is later; the packet has
    ``max(n, 1)`` beats; the bank is ``drained`` with the last beat.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "clear": In(1),
            "full": In(2),
            "drained": Out(2),
            "acc": In(data.ArrayLayout(data.ArrayLayout(signed(cfg.acc_bits), cfg.head_dim), 2)),
            "total": In(data.ArrayLayout(cfg.sum_bits, 2)),
            "count": In(data.ArrayLayout(cfg.length_bits, 2)),
            "query": In(data.ArrayLayout(cfg.index_bits, 2)),
            "exp_read": In(memory.ReadPort.Signature(
                addr_width=cfg.index_bits + 1, shape=layouts.weighted_key(cfg))),
            "out": Out(stream.Signature(layouts.output_packet(cfg))),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        groups, width = cfg.v_groups, cfg.head_dim // cfg.v_groups
        rx, rb = cfg.recip_index_bits, cfg.recip_bits
        m = Module()
        table = memory.Memory(shape=rb, depth=1 << rx, init=fixedpoint.recip_table(cfg).tolist())
        m.submodules.recip_table = table
        lookup = table.read_port()

        # Lookup: leading one and reciprocal, then the output vector one group per cycle.
        looked = Signal(2)
        lsel = Signal()
        lstep = Signal(range(groups + 2))
        total = Mux(lsel, self.total[1], self.total[0])
        k_now = leading_one(m, total, cfg.sum_bits)
        below = Signal(range(cfg.sum_bits))
        m.d.comb += [below.eq(k_now - rx), lookup.addr.eq((total >> below)[:rx])]
        octave = [Signal(range(cfg.sum_bits), name=f"octave{b}") for b in range(2)]
        recip = [Signal(rb, name=f"recip{b}") for b in range(2)]
        vector = [Signal(data.ArrayLayout(signed(cfg.out_bits), cfg.head_dim), name=f"vector{b}")
                  for b in range(2)]
        k_held = Signal(range(cfg.sum_bits))
        shift_out = Signal(range(rb + cfg.sum_bits))
        m.d.comb += [lookup.en.eq(lstep == 0), shift_out.eq(rb + k_held - cfg.out_frac_bits)]
        looking = Signal()
        m.d.comb += looking.eq(Mux(lsel, self.full[1] & ~looked[1], self.full[0] & ~looked[0]))
        with m.If(self.clear):
            m.d.sync += [lstep.eq(0), lsel.eq(0)]
        with m.Elif((lstep == 0) & looking):
            m.d.sync += [lstep.eq(1), k_held.eq(k_now)]
        with m.Elif(lstep != 0):
            for b in range(2):
                with m.If(lsel == b):
                    for g in range(groups):
                        with m.If(lstep == g + 1):
                            for d in range(width):
                                element = self.acc[b][g * width + d]
                                rounded = round_shift(m, element * lookup.data, shift_out,
                                                      name=f"out{b}_{g * width + d}")
                                zero = self.count[b] == 0
                                m.d.sync += vector[b][g * width + d].eq(Mux(zero, 0, rounded))
                    with m.If(lstep == groups):
                        m.d.sync += [octave[b].eq(k_held), recip[b].eq(lookup.data)]
            with m.If(lstep == groups):
                m.d.sync += [lstep.eq(0), lsel.eq(~lsel)]
            with m.Else():
                m.d.sync += lstep.eq(lstep + 1)
        for b in range(2):
            with m.If(self.clear | self.drained[b]):
                m.d.sync += looked[b].eq(0)
            with m.Elif((lstep == groups) & (lsel == b)):
                m.d.sync += looked[b].eq(1)

        # Emit: one beat per kept key (at least one per query), the exponent buffer read one ahead.
        esel = Signal()
        index = Signal(cfg.length_bits)
        presenting = Signal()
        beats = Signal(cfg.length_bits)
        m.d.comb += beats.eq(Mux(esel, self.count[1], self.count[0]))
        last = Signal()
        m.d.comb += last.eq(index + 1 >= beats)
        advance = Signal()
        m.d.comb += advance.eq(~presenting | self.out.ready)
        next_bank = Signal()
        next_index = Signal(cfg.length_bits)
        next_presenting = Signal()
        with m.If(presenting & ~last):
            m.d.comb += [next_bank.eq(esel), next_index.eq(index + 1), next_presenting.eq(1)]
        with m.Elif(presenting):
            m.d.comb += [next_bank.eq(~esel), next_index.eq(0),
                         next_presenting.eq(Mux(esel, looked[0], looked[1]))]
        with m.Else():
            m.d.comb += [next_bank.eq(esel), next_index.eq(0),
                         next_presenting.eq(Mux(esel, looked[1], looked[0]))]
        m.d.comb += [
            self.exp_read.addr.eq(Cat(next_index[:cfg.index_bits], next_bank)),
            self.exp_read.en.eq(advance),
        ]
        with m.If(self.clear):
            m.d.sync += [presenting.eq(0), esel.eq(0), index.eq(0)]
        with m.Elif(advance):
            m.d.sync += [presenting.eq(next_presenting), esel.eq(next_bank), index.eq(next_index)]
        done = presenting & last & self.out.ready
        m.d.comb += self.drained.eq(Mux(done, Mux(esel, 0b10, 0b01), 0))

        word = self.exp_read.data
        k_sel = Mux(esel, octave[1], octave[0])
        r_sel = Mux(esel, recip[1], recip[0])
        shift_p = Signal(range(rb + cfg.sum_bits))
        m.d.comb += shift_p.eq(rb + k_sel - cfg.prob_frac_bits)
        packet = self.out.payload
        m.d.comb += [
            self.out.valid.eq(presenting),
            packet.query.eq(Mux(esel, self.query[1], self.query[0])),
            packet.kept.eq(beats),
            packet.has_key.eq(beats != 0),
            packet.key.eq(Mux(beats != 0, word.key, 0)),
            packet.prob.eq(Mux(beats != 0, round_shift(m, word.exp * r_sel, shift_p, name="prob"), 0)),
            packet.last.eq(last),
            packet.vector.eq(Mux(last, Mux(esel, vector[1], vector[0]), 0)),
        ]
        return m
