"""One bit-serial dot-product lane with the exact early-termination comparator, and the key waiting
for it."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.rtl.arith import carry_tree, lowest_set


class KeyStartSignature(wiring.Signature):
    """A key handed to a lane (scheduler side): ``valid`` hands it; ``key`` and ``query`` are its
    indices; ``q``, ``pairs``, ``pos`` and ``limit`` its query's vector, pair sums
    (``layouts.query_pairs``), ``P = Σ max(q_i, 0)`` and ``θ + P − 1``;
    ``mask`` the planes to process and ``sign`` whether the first is a sign plane.

    Its signals are named ``<port>`` (``valid``) and ``<port>_<field>`` in the Verilog.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        super().__init__({
            "valid": Out(1),
            "key": Out(cfg.index_bits),
            "query": Out(cfg.index_bits),
            "q": Out(layouts.query(cfg)),
            "pairs": Out(layouts.query_pairs(cfg)),
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


class _Key:
    """A key's registers: its indices, its query's vector, pair sums, ``P`` and limit, and its planes."""

    def __init__(self, cfg: EngineConfig, prefix: str) -> None:
        self.key = Signal(cfg.index_bits, name=f"{prefix}key")
        self.query = Signal(cfg.index_bits, name=f"{prefix}query")
        self.q = Signal(layouts.query(cfg), name=f"{prefix}q")
        self.pairs = Signal(layouts.query_pairs(cfg), name=f"{prefix}pairs")
        self.pos = Signal(unsigned(cfg.pos_sum_bits), name=f"{prefix}pos")
        self.limit = Signal(signed(cfg.score_bits + 1), name=f"{prefix}limit")
        self.mask = Signal(cfg.k_bits, name=f"{prefix}mask")
        self.sign = Signal(name=f"{prefix}sign")


class BitSerialLane(wiring.Component):
    """Holds one query bit-parallel and walks one key's bit planes, MSB first; one more key waits in
    its head register.

    A key is handed on ``start`` (``KeyStartSignature``) while ``ready`` (the head register is empty),
    with the planes to process (``mask``: all of them, or with ``skip_zero_planes`` its non-zero planes
    from the sign plane of its narrowest width on) and whether the first is a sign plane (``sign``).
    The lane takes the waiting key in the cycle it is idle or finishing its current one. Each cycle
    processes one plane ``t`` and the zero planes after it: ``acc ← (2·acc ± Σ q_i·b_i) · 2**z``
    (minus for a sign plane; the sum's first level selects, per element pair, 0, either element or
    their sum), leaving ``r`` planes; the key is pruned when
    ``acc + P ≤ (θ + P − 1) >> r``, i.e. when ``UB_r = acc·2**r + (2**r − 1)·P < θ``
    (``docs/arithmetic.md`` §2). ``limit`` is ``θ + P − 1``, computed once per query by the query
    unit; the lane keeps ``slack = ((θ + P − 1) >> r) − P`` for the plane it processes next, so that the
    cycle's test is one comparison of the plane's sum with a value ready before it.

    Latency: a key handed in cycle ``h`` is taken in the first cycle ``d > h`` in which the lane is
    idle or finishing, and processed in cycles ``d+1 … d+c`` where ``c`` is the cycles the bound
    needs; in cycle ``d+c+1`` the lane asserts ``decided`` with the decision (``planes`` = ``c``,
    ``kept``, ``score``, ``key``, ``query``, all registers). ``ready`` falls the cycle after a key is
    handed and rises the cycle after it is taken, so takes are at least 2 cycles apart. ``addr`` is the
    key-store address of the plane to process next cycle; ``busy`` is high while a key is processed.
    Nothing changes while ``enable`` is low (the read port holds its data too).
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "enable": In(1),
            "dense": In(1),
            "plane": In(cfg.head_dim),
            "start": In(KeyStartSignature(cfg)),
            "ready": Out(1),
            "addr": Out(layouts.key_address_bits(cfg)),
            "busy": Out(1),
            "decided": Out(1),
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
        skipping = cfg.skip_zero_planes and cfg.early_termination
        m = Module()
        head, now = _Key(cfg, "head_"), _Key(cfg, "")
        head_first = Signal(range(B), name="head_first")
        head_slack = Signal(signed(cfg.score_bits + 2), name="head_slack")
        plane_now = Signal(range(B))
        fresh = Signal()
        acc = Signal(signed(cfg.score_bits))
        slack = Signal(signed(cfg.score_bits + 2))
        steps = Signal(range(B + 1))

        def above(bits: Value, position: Value, name: str) -> tuple[Signal, Signal]:
            higher = Signal(B, name=f"{name}_higher")
            m.d.comb += higher.eq(bits & ~((Const(2, B + 1) << position) - 1))
            return lowest_set(m, higher, B, name=name)

        def remaining(found: Value, index: Value, name: str) -> Signal:
            """Planes left after a step that ends before plane ``index`` (none when not ``found``)."""
            left = Signal(range(B + 1), name=name)
            m.d.comb += left.eq(Mux(found, B - index, 0))
            return left

        if skipping:
            has_next, following = above(now.mask, plane_now, "following")
            zeros = Signal(range(B))
            m.d.comb += zeros.eq(Mux(has_next, following - plane_now - 1, B - 1 - plane_now))
            has_after, after = above(now.mask, following, "after")
            left_after = remaining(has_after, after, "left_after")
            _, first = lowest_set(m, self.start.mask, B, name="first")
            has_second, second = above(self.start.mask, first, "second")
            left_first = remaining(has_second, second, "left_first")
        else:
            has_next, following = plane_now != B - 1, plane_now + 1
            first, left_first = Const(0, plane_bits), Const(B - 1, range(B + 1))
            left_after = remaining(plane_now < B - 2, plane_now + 2, "left_after")

        terms = [
            Mux(self.plane[2 * j], Mux(self.plane[2 * j + 1], now.pairs[j], now.q[2 * j]),
                Mux(self.plane[2 * j + 1], now.q[2 * j + 1], 0))
            for j in range(cfg.head_dim // 2)
        ]
        if cfg.head_dim % 2:
            terms.append(Mux(self.plane[cfg.head_dim - 1], now.q[cfg.head_dim - 1], 0))
        partial = carry_tree(m, terms, "partial")
        base = Mux(fresh, 0, acc << 1)
        threshold = Signal(signed(cfg.score_bits + 3))
        m.d.comb += threshold.eq((slack >> zeros if skipping else slack) - base)
        step = base + Mux(now.sign, -partial, partial)
        acc_next = step << zeros if skipping else step
        prune = Signal()
        if cfg.early_termination:
            below = Mux(now.sign, partial + threshold >= 0, partial <= threshold)
            m.d.comb += prune.eq(~self.dense & below)
        finishing, take = Signal(), Signal()
        head_valid = Signal()
        m.d.comb += [
            finishing.eq(self.busy & (prune | ~has_next)),
            take.eq(head_valid & (~self.busy | finishing)),
            self.ready.eq(~head_valid),
        ]
        with m.If(take):
            m.d.comb += self.addr.eq(Cat(head_first[:plane_bits], head.key))
        with m.Else():
            m.d.comb += self.addr.eq(Cat(following[:plane_bits], now.key))

        with m.If(self.enable):
            m.d.sync += [
                self.decided.eq(finishing),
                self.kept.eq(~prune),
                self.key.eq(now.key),
                self.query.eq(now.query),
                self.score.eq(acc_next),
                self.planes.eq(steps),
            ]
            with m.If(self.start.valid):
                m.d.sync += [
                    head_valid.eq(1),
                    head.key.eq(self.start.key),
                    head.query.eq(self.start.query),
                    head.q.eq(self.start.q),
                    head.pairs.eq(self.start.pairs),
                    head.pos.eq(self.start.pos),
                    head.limit.eq(self.start.limit),
                    head.mask.eq(self.start.mask),
                    head.sign.eq(self.start.sign),
                    head_first.eq(first),
                    head_slack.eq((self.start.limit >> left_first) - self.start.pos),
                ]
            with m.Elif(take):
                m.d.sync += head_valid.eq(0)
            with m.If(take):
                m.d.sync += [
                    self.busy.eq(1),
                    plane_now.eq(head_first),
                    fresh.eq(1),
                    steps.eq(1),
                    slack.eq(head_slack),
                    *[getattr(now, name).eq(getattr(head, name))
                      for name in ("key", "query", "q", "pairs", "pos", "limit", "mask", "sign")],
                ]
            with m.Elif(finishing):
                m.d.sync += self.busy.eq(0)
            with m.Elif(self.busy):
                m.d.sync += [
                    plane_now.eq(following),
                    fresh.eq(0),
                    now.sign.eq(0),
                    steps.eq(steps + 1),
                    acc.eq(acc_next),
                    slack.eq((now.limit >> left_after) - now.pos),
                ]
        return m
