"""The back end: kept-key collector, softmax pass, normalizer, exponent buffer and value store."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import SCALE_SHIFT_BITS, EngineConfig
from leopard.hw.rtl.collector import KeptCollector
from leopard.hw.rtl.normalizer import Normalizer
from leopard.hw.rtl.softmax_pass import SoftmaxPass, exponent_address_bits
from leopard.hw.rtl.v_store import ValueStore


class BackEnd(wiring.Component):
    """Consumes the front end's kept beats and writes one result packet per query on ``out``, in
    query order. Pruned keys never reach it: their ``v`` rows are never read. ``released`` counts the
    queries whose kept keys it no longer needs (the front end's credit); ``emitted`` counts packets.
    The timing of each stage is in its docstring; ``model/reference/cycles.py`` composes them."""

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "kept": In(stream.Signature(layouts.kept_beat(cfg))),
            "v": In(stream.Signature(layouts.value_beat(cfg))),
            "out": Out(stream.Signature(layouts.output_packet(cfg))),
            "clear": In(1),
            "scale_mantissa": In(cfg.scale_mantissa_bits),
            "scale_shift": In(SCALE_SHIFT_BITS),
            "released": Out(cfg.length_bits),
            "emitted": Out(cfg.length_bits),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        m.submodules.collector = collector = KeptCollector(cfg)
        m.submodules.softmax = softmax = SoftmaxPass(cfg)
        m.submodules.normalizer = normalizer = Normalizer(cfg)
        m.submodules.values = values = ValueStore(cfg)
        exponents = memory.Memory(
            shape=layouts.weighted_key(cfg), depth=1 << exponent_address_bits(cfg), init=[]
        )
        m.submodules.exponents = exponents
        wiring.connect(m, wiring.flipped(self.kept), collector.kept)
        wiring.connect(m, wiring.flipped(self.v), values.v)
        wiring.connect(m, normalizer.out, wiring.flipped(self.out))
        wiring.connect(m, softmax.exp_write, exponents.write_port())
        wiring.connect(m, normalizer.exp_read, exponents.read_port())
        m.d.comb += [
            collector.clear.eq(self.clear),
            softmax.clear.eq(self.clear),
            normalizer.clear.eq(self.clear),
            softmax.scale_mantissa.eq(self.scale_mantissa),
            softmax.scale_shift.eq(self.scale_shift),
            softmax.collected.eq(collector.collected),
            softmax.counts.eq(collector.counts),
            softmax.top.eq(collector.top),
            collector.slot_query.eq(softmax.slot_query),
            collector.release.eq(softmax.release),
            collector.read_slot.eq(softmax.read_slot),
            collector.read_bank.eq(softmax.read_bank),
            collector.read_index.eq(softmax.read_index),
            softmax.entry.eq(collector.entry),
            values.addr.eq(softmax.v_addr),
            softmax.v_row.eq(values.row),
            normalizer.full.eq(softmax.full),
            softmax.drained.eq(normalizer.drained),
            normalizer.acc.eq(softmax.acc),
            normalizer.total.eq(softmax.total),
            normalizer.count.eq(softmax.count),
            normalizer.query.eq(softmax.query),
            self.released.eq(collector.released),
        ]
        with m.If(self.clear):
            m.d.sync += self.emitted.eq(0)
        with m.Elif(self.out.valid & self.out.ready & self.out.payload.last):
            m.d.sync += self.emitted.eq(self.emitted + 1)
        return m
