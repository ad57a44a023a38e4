"""One bit-serial dot-product lane with the exact early-termination comparator."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .arith import tree_sum
from .config import EngineConfig


class BitSerialLane(wiring.Component):
    """Holds one query bit-parallel and walks one key's bit planes, MSB (sign) plane first.

    Per processed plane ``t`` (``r = B−1−t`` planes remain): ``acc ← 2·acc ± Σ q_i·b_i`` (minus for
    the sign plane), then the key is pruned when ``acc + P ≤ (θ + P − 1) >> r``, i.e. when
    ``UB_r = acc·2**r + (2**r − 1)·P < θ`` (``docs/arithmetic.md`` §2). ``limit`` is ``θ + P − 1``,
    computed once per query by the query unit.

    Latency: a key started in cycle ``d`` (``start``, with ``addr`` pointing at its sign plane) is
    processed in cycles ``d+1 … d+p`` where ``p`` is the planes the bound needs; in cycle ``d+p`` the
    lane asserts ``finishing`` with the decision, and is ``free`` to start the next key in that cycle.
    ``addr`` is the key-store address of the plane to process next cycle. Nothing changes while
    ``enable`` is low (the read port holds its data too).
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        limit = signed(cfg.score_bits + 1)
        super().__init__({
            "enable": In(1),
            "dense": In(1),
            "plane": In(cfg.head_dim),
            "start": In(1),
            "start_key": In(cfg.index_bits),
            "start_query": In(cfg.index_bits),
            "start_q": In(layouts.query(cfg)),
            "start_pos": In(cfg.pos_sum_bits),
            "start_limit": In(limit),
            "addr": Out(layouts.key_address_bits(cfg)),
            "busy": Out(1),
            "free": Out(1),
            "finishing": Out(1),
            "kept": Out(1),
            "key": Out(cfg.index_bits),
            "query": Out(cfg.index_bits),
            "score": Out(signed(cfg.score_bits)),
            "planes": Out(cfg.plane_count_bits),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first processed plane."""
        return 1

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        B = cfg.k_bits
        m = Module()
        step = Signal(range(B))
        acc = Signal(signed(cfg.score_bits))
        q = Signal(layouts.query(cfg))
        pos = Signal(unsigned(cfg.pos_sum_bits))
        limit = Signal(signed(cfg.score_bits + 1))
        limit_now = Signal(signed(cfg.score_bits + 1))
        remaining_next = Signal(range(B))
        m.d.comb += remaining_next.eq(B - 2 - step)

        partial = tree_sum([Mux(self.plane[i], q[i], 0) for i in range(cfg.head_dim)])
        acc_next = Signal(signed(cfg.score_bits + 1))
        m.d.comb += acc_next.eq(Mux(step == 0, -partial, (acc << 1) + partial))
        prune = Signal()
        if cfg.early_termination:
            m.d.comb += prune.eq(~self.dense & (acc_next + pos <= limit_now))
        last = step == B - 1
        m.d.comb += [
            self.finishing.eq(self.busy & (prune | last)),
            self.kept.eq(~prune),
            self.free.eq(~self.busy | self.finishing),
            self.score.eq(acc_next),
            self.planes.eq(step + 1),
        ]

        with m.If(self.start):
            m.d.comb += self.addr.eq(Cat(Const(0, layouts.plane_bits(cfg)), self.start_key))
        with m.Else():
            m.d.comb += self.addr.eq(Cat((step + 1)[:layouts.plane_bits(cfg)], self.key))

        with m.If(self.enable):
            with m.If(self.start):
                m.d.sync += [
                    self.busy.eq(1),
                    step.eq(0),
                    self.key.eq(self.start_key),
                    self.query.eq(self.start_query),
                    q.eq(self.start_q),
                    pos.eq(self.start_pos),
                    limit.eq(self.start_limit),
                    limit_now.eq(self.start_limit >> (B - 1)),
                ]
            with m.Elif(self.finishing):
                m.d.sync += self.busy.eq(0)
            with m.Elif(self.busy):
                m.d.sync += [
                    step.eq(step + 1),
                    acc.eq(acc_next),
                    limit_now.eq(limit >> remaining_next),
                ]
        return m
