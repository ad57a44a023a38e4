"""``FrontEnd``: the QK unit behind the memory-mapped register block; the front-end Verilog top."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from leopard.hw.config import EngineConfig
from leopard.hw.ports import top_signature
from leopard.hw.rtl.qk_unit import QKUnit
from leopard.hw.rtl.register_block import RegisterBlock


def connect_job(m: Module, regs: RegisterBlock, qk: QKUnit) -> None:
    """Job registers into the QK unit; its key counters and refusal back into the registers."""
    m.d.comb += [
        qk.start.eq(regs.ctrl),
        qk.dense.eq(regs.mode_dense),
        qk.causal.eq(regs.mode_causal),
        qk.keys.eq(regs.job_keys),
        qk.queries.eq(regs.job_queries),
        qk.first.eq(regs.job_first),
        qk.slot.eq(regs.job_slot),
        regs.threshold_slot.eq(regs.job_slot),
        qk.theta.eq(regs.threshold),
        regs.status_error.eq(qk.error),
        regs.kept.eq(qk.kept_count),
        regs.planes.eq(qk.planes_count),
    ]


class FrontEnd(wiring.Component):
    """The QK front end with its register interface (``regmap.json``): keys in on ``k``, queries on
    ``q``, kept keys out on ``kept`` and every decided key on ``status`` (when built); ``busy`` and
    ``done`` mirror ``STATUS``."""

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__(top_signature(cfg, "frontend"))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.regs = regs = RegisterBlock(self._cfg)
        m.submodules.qk = qk = QKUnit(self._cfg)
        wiring.connect(m, wiring.flipped(self.bus), regs.bus)
        wiring.connect(m, wiring.flipped(self.q), qk.q)
        wiring.connect(m, wiring.flipped(self.k), qk.k)
        wiring.connect(m, qk.kept, wiring.flipped(self.kept))
        if self._cfg.status_stream:
            wiring.connect(m, qk.status, wiring.flipped(self.status))
        connect_job(m, regs, qk)
        m.d.comb += [
            self.busy.eq(qk.busy),
            self.done.eq(qk.done),
            qk.released.eq(qk.queries_done),
            regs.status_busy.eq(qk.busy),
            regs.status_done.eq(qk.done),
            regs.cycles.eq(qk.cycles),
            regs.queries_done.eq(qk.queries_done),
        ]
        return m
