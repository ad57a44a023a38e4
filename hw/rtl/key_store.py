"""The key store: keys held as bit planes, one ``D``-bit plane per address, one read port per lane."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.rtl.arith import popcount


def plane_info(m: Module, key: data.View, cfg: EngineConfig) -> tuple[Signal, Signal]:
    """``(mask, sign)``: the planes a lane processes for ``key`` and whether the first is a sign plane
    (``docs/arithmetic.md`` §2, combinational). Without ``skip_zero_planes``: every plane, from the
    sign plane. With it: the non-zero planes from the sign plane of the key's narrowest width on (the
    last plane when there is none), the first a sign plane when it is that one."""
    B = cfg.k_bits
    mask, sign = Signal(B, name="plane_mask"), Signal(name="plane_sign")
    if not (cfg.skip_zero_planes and cfg.early_termination):
        m.d.comb += [mask.eq((1 << B) - 1), sign.eq(1)]
        return mask, sign
    planes = [Cat(key[i].bit_select(B - 1 - t, 1) for i in range(cfg.head_dim)) for t in range(B)]
    extension = Signal(range(B), name="extension")
    leading, copies = Const(1), []
    for t in range(B - 1):
        leading = leading & (planes[t] == planes[t + 1])
        copies.append(leading)
    m.d.comb += extension.eq(popcount(copies) if copies else 0)
    processed = Signal(B, name="processed")
    m.d.comb += processed.eq(Cat(*[(planes[t] != 0) & (extension <= t) for t in range(B)]))
    m.d.comb += [
        mask.eq(Mux(processed != 0, processed, 1 << (B - 1))),
        sign.eq(processed.bit_select(extension, 1)),
    ]
    return mask, sign


def plane_info_layout(cfg: EngineConfig) -> data.StructLayout:
    return data.StructLayout({"mask": cfg.k_bits, "sign": 1})


class KeyStore(wiring.Component):
    """Stores key ``j``'s plane ``t`` (``t = 0`` the sign plane, bit ``B−1`` of every element) at address
    ``{j, t}``, in one copy per lane (one read and one write port each: what a block RAM has, so
    synthesis maps each copy on its own instead of splitting one many-ported memory).

    Write side: a key taken from the ``k`` stream is written one plane per cycle, so a key costs
    ``k_bits`` cycles and the stream accepts the next key in the cycle its predecessor's last plane is
    written. Read side: lane ``l`` presents ``addr[l]``; the plane appears on ``data[l]`` one cycle later
    (held while ``en`` is low). ``info[l]`` is the ``plane_info`` of key ``info_addr[l]``, combinationally
    (a small table written with the key's last plane; a constant without ``skip_zero_planes``). Keys
    must not be written while a job reads them.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        address = layouts.key_address_bits(cfg)
        super().__init__({
            "k": In(stream.Signature(layouts.key_beat(cfg))),
            "en": In(1),
            "addr": In(data.ArrayLayout(address, cfg.lanes)),
            "data": Out(data.ArrayLayout(cfg.head_dim, cfg.lanes)),
            "info_addr": In(data.ArrayLayout(cfg.index_bits, cfg.lanes)),
            "info": Out(data.ArrayLayout(plane_info_layout(cfg), cfg.lanes)),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        B = cfg.k_bits
        m = Module()
        writes = []
        rows = cfg.max_seq_len << layouts.plane_bits(cfg)
        for lane in range(cfg.lanes):
            store = memory.Memory(shape=cfg.head_dim, depth=rows, init=[])
            m.submodules[f"store{lane}"] = store
            port = store.read_port()
            writes.append(store.write_port())
            m.d.comb += [port.en.eq(self.en), port.addr.eq(self.addr[lane]), self.data[lane].eq(port.data)]

        holding = Signal()
        index = Signal(cfg.index_bits)
        key = Signal(layouts.key_beat(cfg).members["key"])
        step = Signal(range(B))
        bit = Signal(range(B))
        row = Signal(cfg.head_dim)
        m.d.comb += [
            bit.eq(B - 1 - step),
            row.eq(Cat(key[i].bit_select(bit, 1) for i in range(cfg.head_dim))),
            self.k.ready.eq(~holding | (step == B - 1)),
        ]
        for write in writes:
            m.d.comb += [
                write.en.eq(holding),
                write.addr.eq(Cat(step[:layouts.plane_bits(cfg)], index)),
                write.data.eq(row),
            ]
        mask, sign = plane_info(m, key, cfg)
        if cfg.skip_zero_planes and cfg.early_termination:
            for lane in range(cfg.lanes):
                table = memory.Memory(shape=plane_info_layout(cfg), depth=cfg.max_seq_len, init=[])
                m.submodules[f"plane_info{lane}"] = table
                update = table.write_port()
                port = table.read_port(domain="comb")
                m.d.comb += [
                    update.addr.eq(index),
                    update.data.mask.eq(mask),
                    update.data.sign.eq(sign),
                    update.en.eq(holding & (step == B - 1)),
                    port.addr.eq(self.info_addr[lane]),
                    self.info[lane].eq(port.data),
                ]
        else:
            for lane in range(cfg.lanes):
                m.d.comb += [self.info[lane].mask.eq(mask), self.info[lane].sign.eq(sign)]
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
