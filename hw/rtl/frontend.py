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


def attach_unit(m: Module, top: wiring.Component, cfg: EngineConfig, regs: RegisterBlock,
                unit: wiring.Component, *, releases: bool) -> None:
    """``unit`` (a QK unit's ports) connected to the register block ``regs`` and to ``top``'s bus,
    streams, ``busy`` and ``done``; with ``releases``, a query is released as it completes."""
    wiring.connect(m, wiring.flipped(top.bus), regs.bus)
    wiring.connect(m, wiring.flipped(top.q), unit.q)
    wiring.connect(m, wiring.flipped(top.k), unit.k)
    wiring.connect(m, unit.kept, wiring.flipped(top.kept))
    if cfg.status_stream:
        wiring.connect(m, unit.status, wiring.flipped(top.status))
    connect_job(m, regs, unit)
    m.d.comb += [
        top.busy.eq(unit.busy),
        top.done.eq(unit.done),
        *([unit.released.eq(unit.queries_done)] if releases else []),
        regs.status_busy.eq(unit.busy),
        regs.status_done.eq(unit.done),
        regs.cycles.eq(unit.cycles),
        regs.queries_done.eq(unit.queries_done),
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
        attach_unit(m, self, self._cfg, regs, qk, releases=True)
        return m
