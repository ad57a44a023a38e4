"""One bit-serial dot-product lane with the exact early-termination comparator."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.rtl.arith import lowest_set, tree_sum


class KeyStartSignature(wiring.Signature):
    """A key handed to a lane (scheduler side): ``valid`` starts it; ``key`` and ``query`` are its
    indices; ``q``, ``pos`` and ``limit`` its query's vector, ``P = Σ max(q_i, 0)`` and ``θ + P − 1``;
    ``mask`` the planes to process and ``sign`` whether the first is a sign plane.

    Its signals are named ``<port>`` (``valid``) and ``<port>_<field>`` in the Verilog.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        super().__init__({
            "valid": Out(1),
            "key": Out(cfg.index_bits),
            "query": Out(cfg.index_bits),
            "q": Out(layouts.query(cfg)),
            "pos": Out(cfg.pos_sum_bits),
            "limit": Out(signed(cfg.score_bits + 1)),
            "mask": Out(cfg.k_bits),
            "sign": Out(1),
        })

    def create(self, *, path: tuple[str | int, ...] | None = None, src_loc_at: int = 0) -> KeyStart:
        return KeyStart(self, path or ("start",))


class KeyStart:
    """The signals of a ``KeyStartSignature``."""

    def __init__(self, signature: KeyStartSignature, path: tuple[str | int, ...]) -> None:
        self.signature = signature
        port = "__".join(map(str, path))
        for name, member in signature.members.items():
            setattr(self, name, Signal(member.shape, name=port if name == "valid" else f"{port}_{name}"))


class BitSerialLane(wiring.Component):
    """Holds one query bit-parallel and walks one key's bit planes, MSB first.

    A key comes on ``start`` (``KeyStartSignature``) with the planes to process (``mask``: all of them,
    or with ``skip_zero_planes`` its non-zero planes from the sign plane of its narrowest width on) and
    whether the first is a sign plane (``sign``). Each cycle processes one plane ``t`` and the zero
    planes after it: ``acc ← (2·acc ± Σ q_i·b_i) · 2**z`` (minus for a sign plane), leaving ``r``
    planes; the key is pruned when ``acc + P ≤ (θ + P − 1) >> r``, i.e. when
    ``UB_r = acc·2**r + (2**r − 1)·P < θ`` (``docs/arithmetic.md`` §2). ``limit`` is ``θ + P − 1``,
    computed once per query by the query unit.

    Latency: a key started in cycle ``d`` (``start.valid``, with ``addr`` pointing at its first plane) is
    processed in cycles ``d+1 … d+c`` where ``c`` is the cycles the bound needs; in cycle ``d+c`` the
    lane asserts ``finishing`` with the decision (``planes`` = ``c``), and is ``free`` to start the next
    key in that cycle. ``addr`` is the key-store address of the plane to process next cycle. Nothing
    changes while ``enable`` is low (the read port holds its data too).
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "enable": In(1),
            "dense": In(1),
            "plane": In(cfg.head_dim),
            "start": In(KeyStartSignature(cfg)),
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

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        B = cfg.k_bits
        plane_bits = layouts.plane_bits(cfg)
        m = Module()
        mask = Signal(B)
        plane_now = Signal(range(B))
        fresh = Signal()
        sign = Signal()
        acc = Signal(signed(cfg.score_bits))
        q = Signal(layouts.query(cfg))
        pos = Signal(unsigned(cfg.pos_sum_bits))
        limit = Signal(signed(cfg.score_bits + 1))
        limit_now = Signal(signed(cfg.score_bits + 1))
        steps = Signal(range(B + 1))

        def above(bits: Value, position: Value, name: str) -> tuple[Signal, Signal]:
            higher = Signal(B, name=f"{name}_higher")
            m.d.comb += higher.eq(bits & ~((Const(2, B + 1) << position) - 1))
            return lowest_set(m, higher, B, name=name)

        def remaining(found: Signal, index: Signal, name: str) -> Signal:
            """Planes left after a step that ends before plane ``index`` (none when not ``found``)."""
            left = Signal(range(B + 1), name=name)
            m.d.comb += left.eq(Mux(found, B - index, 0))
            return left

        skipping = cfg.skip_zero_planes and cfg.early_termination
        if skipping:
            has_next, following = above(mask, plane_now, "following")
            zeros = Signal(range(B))
            m.d.comb += zeros.eq(Mux(has_next, following - plane_now - 1, B - 1 - plane_now))
            has_after, after = above(mask, following, "after")
            left_after = remaining(has_after, after, "left_after")
            _, first = lowest_set(m, self.start.mask, B, name="first")
            has_second, second = above(self.start.mask, first, "second")
            left_first = remaining(has_second, second, "left_first")
        else:
            has_next, following = plane_now != B - 1, plane_now + 1
            first, left_first = Const(0, plane_bits), Const(B - 1, range(B + 1))
            left_after = remaining(plane_now < B - 2, plane_now + 2, "left_after")

        partial = tree_sum([Mux(self.plane[i], q[i], 0) for i in range(cfg.head_dim)])
        acc_next = Signal(signed(cfg.score_bits + 1))
        step = Mux(fresh, 0, acc << 1) + Mux(sign, -partial, partial)
        m.d.comb += acc_next.eq(step << zeros if skipping else step)
        prune = Signal()
        if cfg.early_termination:
            m.d.comb += prune.eq(~self.dense & (acc_next + pos <= limit_now))
        m.d.comb += [
            self.finishing.eq(self.busy & (prune | ~has_next)),
            self.kept.eq(~prune),
            self.free.eq(~self.busy | self.finishing),
            self.score.eq(acc_next),
            self.planes.eq(steps),
        ]

        with m.If(self.start.valid):
            m.d.comb += self.addr.eq(Cat(first[:plane_bits], self.start.key))
        with m.Else():
            m.d.comb += self.addr.eq(Cat(following[:plane_bits], self.key))

        with m.If(self.enable):
            with m.If(self.start.valid):
                m.d.sync += [
                    self.busy.eq(1),
                    mask.eq(self.start.mask),
                    plane_now.eq(first),
                    fresh.eq(1),
                    sign.eq(self.start.sign),
                    steps.eq(1),
                    self.key.eq(self.start.key),
                    self.query.eq(self.start.query),
                    q.eq(self.start.q),
                    pos.eq(self.start.pos),
                    limit.eq(self.start.limit),
                    limit_now.eq(self.start.limit >> left_first),
                ]
            with m.Elif(self.finishing):
                m.d.sync += self.busy.eq(0)
            with m.Elif(self.busy):
                m.d.sync += [
                    plane_now.eq(following),
                    fresh.eq(0),
                    sign.eq(0),
                    steps.eq(steps + 1),
                    acc.eq(acc_next),
                    limit_now.eq(limit >> left_after),
                ]
        return m
