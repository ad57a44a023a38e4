"""``Engine``: the whole attention head (front end, back end, K/V stores, register interface)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring

from leopard.hw import layouts
from leopard.hw.config import SCALE_SHIFT_BITS, EngineConfig
from leopard.hw.ports import top_signature
from leopard.hw.regmap import register_map
from leopard.hw.rtl.backend import BackEnd
from leopard.hw.rtl.frontend import connect_job
from leopard.hw.rtl.qk_unit import QKUnit
from leopard.hw.rtl.register_block import RegisterBlock


class Engine(wiring.Component):
    """One attention-head engine: keys on ``k`` and values on ``v`` (written before a job), queries on
    ``q``, one result packet per query on ``out`` (a beat per kept key with its probability, the last
    beat with the output vector), every decided key on ``status`` (when built).

    A job (``CTRL.start``) runs from the cycle after the start write until the cycle its last packet's
    last beat leaves; ``CYCLES`` counts those cycles and ``QUERIES_DONE`` the packets sent.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__(top_signature(cfg, "engine"))

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        m.submodules.regs = regs = RegisterBlock(cfg)
        m.submodules.qk = qk = QKUnit(cfg)
        m.submodules.backend = backend = BackEnd(cfg)
        wiring.connect(m, wiring.flipped(self.bus), regs.bus)
        wiring.connect(m, wiring.flipped(self.q), qk.q)
        wiring.connect(m, wiring.flipped(self.k), qk.k)
        wiring.connect(m, wiring.flipped(self.v), backend.v)
        wiring.connect(m, qk.kept, backend.kept)
        wiring.connect(m, backend.out, wiring.flipped(self.out))
        if cfg.status_stream:
            wiring.connect(m, qk.status, wiring.flipped(self.status))
        connect_job(m, regs, qk)

        queries = Signal(cfg.length_bits)
        cycles = Signal(cfg.bus_width)
        mantissa = Signal(cfg.scale_mantissa_bits)
        shift = Signal(SCALE_SHIFT_BITS)
        scale = data.View(layouts.register_word(register_map(cfg)["SCALE"]), regs.scale)
        finishing = self.out.valid & self.out.ready & self.out.payload.last
        m.d.comb += [
            regs.scale_slot.eq(regs.job_slot),
            qk.released.eq(backend.released),
            backend.clear.eq(qk.started),
            backend.scale_mantissa.eq(mantissa),
            backend.scale_shift.eq(shift),
            regs.status_busy.eq(self.busy),
            regs.status_done.eq(self.done),
            regs.cycles.eq(cycles),
            regs.queries_done.eq(backend.emitted),
        ]
        with m.If(qk.started):
            m.d.sync += [
                self.busy.eq(1),
                self.done.eq(0),
                queries.eq(regs.job_queries),
                cycles.eq(0),
                mantissa.eq(scale.mantissa),
                shift.eq(scale.shift),
            ]
        with m.Elif(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(finishing & (backend.emitted + 1 == queries)):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
