"""The key store: keys held as bit planes, one ``D``-bit plane per address, one read port per lane."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import EngineConfig


class KeyStore(wiring.Component):
    """Stores key ``j``'s plane ``t`` (``t = 0`` the sign plane, bit ``B−1`` of every element) at address
    ``{j, t}``.

    Write side: a key taken from the ``k`` stream is written one plane per cycle, so a key costs
    ``k_bits`` cycles and the stream accepts the next key in the cycle its predecessor's last plane is
    written. Read side: lane ``l`` presents ``addr[l]``; the plane appears on ``data[l]`` one cycle later
    (held while ``en`` is low). Keys must not be written while a job reads them.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        address = layouts.key_address_bits(cfg)
        super().__init__({
            "k": In(stream.Signature(layouts.key_beat(cfg))),
            "en": In(1),
            "addr": In(data.ArrayLayout(address, cfg.lanes)),
            "data": Out(data.ArrayLayout(cfg.head_dim, cfg.lanes)),
        })

    @property
    def read_latency(self) -> int:
        return 1

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        B = cfg.k_bits
        m = Module()
        store = memory.Memory(
            shape=cfg.head_dim, depth=cfg.max_seq_len << layouts.plane_bits(cfg), init=[]
        )
        m.submodules.store = store
        for lane in range(cfg.lanes):
            port = store.read_port()
            m.d.comb += [port.en.eq(self.en), port.addr.eq(self.addr[lane]), self.data[lane].eq(port.data)]

        holding = Signal()
        index = Signal(cfg.index_bits)
        key = Signal(layouts.key_beat(cfg).members["key"])
        step = Signal(range(B))
        write = store.write_port()
        bit = Signal(range(B))
        m.d.comb += bit.eq(B - 1 - step)
        m.d.comb += [
            self.k.ready.eq(~holding | (step == B - 1)),
            write.en.eq(holding),
            write.addr.eq(Cat(step[:layouts.plane_bits(cfg)], index)),
            write.data.eq(Cat(key[i].bit_select(bit, 1) for i in range(cfg.head_dim))),
        ]
        with m.If(self.k.valid & self.k.ready):
            m.d.sync += [
                holding.eq(1),
                index.eq(self.k.payload.index),
                key.eq(self.k.payload.key),
                step.eq(0),
            ]
        with m.Elif(holding & (step == B - 1)):
            m.d.sync += holding.eq(0)
        with m.Elif(holding):
            m.d.sync += step.eq(step + 1)
        return m
