"""The value store: one ``v`` row per address, read only for kept keys."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig


class ValueStore(wiring.Component):
    """Writes each row taken from the ``v`` stream (one per cycle, always ready); ``row`` is the row at
    ``addr`` one cycle later. Rows must not be written while a job reads them."""

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "v": In(stream.Signature(layouts.value_beat(cfg))),
            "addr": In(cfg.index_bits),
            "row": Out(data.ArrayLayout(signed(cfg.v_bits), cfg.head_dim)),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        rows = memory.Memory(
            shape=data.ArrayLayout(signed(cfg.v_bits), cfg.head_dim), depth=cfg.max_seq_len, init=[]
        )
        m.submodules.rows = rows
        write = rows.write_port()
        read = rows.read_port()
        m.d.comb += [
            self.v.ready.eq(1),
            write.addr.eq(self.v.payload.index),
            write.data.eq(self.v.payload.value),
            write.en.eq(self.v.valid),
            read.addr.eq(self.addr),
            self.row.eq(read.data),
        ]
        return m
