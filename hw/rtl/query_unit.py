"""The query unit: the dispatch slot holding the query whose keys the lanes are being handed."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.rtl.arith import tree_sum


class QueryUnit(wiring.Component):
    """Takes a query from the ``q`` stream when ``accept`` allows and the slot is empty or being
    ``consume``d, and computes once per query ``P = Σ max(q_i, 0)`` and the lane limit
    ``θ + P − 1`` (``docs/arithmetic.md`` §2) and the pair sums ``q[2j] + q[2j+1]`` the lanes' adder trees
    start from (``layouts.query_pairs``).

    Latency: a query taken in cycle ``c`` is in the slot (``valid``) from cycle ``c+1``.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "q": In(stream.Signature(layouts.query(cfg))),
            "accept": In(1),
            "consume": In(1),
            "theta": In(signed(cfg.score_bits)),
            "taken": Out(1),
            "valid": Out(1),
            "vector": Out(layouts.query(cfg)),
            "pairs": Out(layouts.query_pairs(cfg)),
            "pos": Out(cfg.pos_sum_bits),
            "limit": Out(signed(cfg.score_bits + 1)),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        incoming = self.q.payload
        pos = tree_sum([Mux(incoming[i] > 0, incoming[i], 0) for i in range(cfg.head_dim)])
        m.d.comb += [
            self.q.ready.eq(self.accept & (~self.valid | self.consume)),
            self.taken.eq(self.q.valid & self.q.ready),
        ]
        with m.If(self.taken):
            m.d.sync += [
                self.valid.eq(1),
                self.vector.eq(incoming),
                *[self.pairs[j].eq(incoming[2 * j] + incoming[2 * j + 1]) for j in range(cfg.head_dim // 2)],
                self.pos.eq(pos),
                self.limit.eq(self.theta + pos - 1),
            ]
        with m.Elif(self.consume):
            m.d.sync += self.valid.eq(0)
        return m
