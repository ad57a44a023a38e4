"""The dense bit-parallel QK unit: the plain design early termination is measured against.

One key per cycle: the key is read whole from its store, its ``D`` products with the query are formed in
parallel and summed by an adder tree registered at every level, and the score is compared with the
threshold. Same config, streams, register interface and kept/status beats as the bit-serial front end;
synthesized with DSPs for the products or, with ``-nodsp``, from LUTs alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, wiring

from leopard.hw import layouts
from leopard.hw.config import EngineConfig, clog2
from leopard.hw.ports import top_signature
from leopard.hw.rtl.frontend import attach_unit
from leopard.hw.rtl.qk_unit import decoupled, job_refused, visible_keys
from leopard.hw.rtl.register_block import RegisterBlock
from leopard.hw.timing import BITPARALLEL_READ_STAGES, bitparallel_latency, bitparallel_tree_levels


def token_layout(cfg: EngineConfig) -> data.StructLayout:
    """What travels beside a key through the pipeline: its query (job-relative) and key index, whether
    it is its query's last key."""
    return data.StructLayout({
        "valid": 1, "query": cfg.index_bits, "key": cfg.index_bits, "last": 1,
    })


def registered_tree(m: Module, values: Sequence[Value], name: str) -> Value:
    """Balanced adder tree with a register after every level (``⌈log2 n⌉`` cycles); widths grow as
    Amaranth's ``+`` does."""
    level = list(values)
    depth = 0
    while len(level) > 1:
        depth += 1
        sums = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        sums += [level[-1]] if len(level) % 2 else []
        registered = []
        for index, value in enumerate(sums):
            held = Signal(value.shape(), name=f"{name}_l{depth}_{index}")
            m.d.sync += held.eq(value)
            registered.append(held)
        level = registered
    return level[0]


def credit(m: Module, name: str, depth: int, spent: Value, returned: Value) -> Value:
    """Room in a FIFO of ``depth`` beats not yet promised (a register), and the next cycle's value: one
    credit ``spent`` per key dispatched, one ``returned`` when its beat leaves the FIFO, or when it
    leaves the pipeline without one."""
    left = Signal(range(depth + 1), init=depth, name=name)
    following = Signal.like(left, name=f"{name}_next")
    m.d.comb += following.eq(left - spent + returned)
    m.d.sync += left.eq(following)
    return following


class BitParallelUnit(wiring.Component):
    """Scores one key per cycle, every key of every query of a job (the ports of ``QKUnit`` but
    ``released``: queries are completed in dispatch order and need no window).

    The query at the head of the ``q`` stream is read in place, and taken in the cycle its last key is
    dispatched. Timing: from cycle ``BITPARALLEL_DISPATCH_START`` = 1 after ``start``, one key is
    dispatched per cycle, in query order and key order, while the query stream keeps up; a key
    dispatched in cycle ``d`` is decided in cycle ``d + bitparallel_latency(cfg)``, when it is pushed
    on ``status`` (and on ``kept`` when kept or its query's last). A key is kept when the job is dense
    or its score is at least the threshold: exactly the bit-serial front end's decisions, which prune
    only below it.

    The job inputs are checked (and the first query's visible keys found) a cycle before ``start``:
    they must hold their values from the cycle before it, as the register block's do (``start`` is
    written after them).

    Nothing stalls: a key is dispatched only when both output FIFOs have room for it and every key
    in flight (a credit count per FIFO), so the pipeline registers run freely. Each FIFO holds
    ``fifo_depth`` beats beyond the pipeline's.
    """

    def __init__(self, cfg: EngineConfig, *, split: bool = False) -> None:
        self._cfg = cfg
        self._split = split
        super().__init__({
            name: member for name, member in top_signature(cfg, "frontend").members.items()
            if name in ("q", "k", "kept", "status")
        } | {
            "start": wiring.In(1), "dense": wiring.In(1), "causal": wiring.In(1),
            "keys": wiring.In(cfg.length_bits), "queries": wiring.In(cfg.length_bits),
            "first": wiring.In(cfg.index_bits), "slot": wiring.In(max(1, clog2(cfg.threshold_regs))),
            "theta": wiring.In(signed(cfg.score_bits)),
            "busy": wiring.Out(1), "done": wiring.Out(1), "error": wiring.Out(1),
            "cycles": wiring.Out(cfg.bus_width), "kept_count": wiring.Out(cfg.bus_width),
            "planes_count": wiring.Out(cfg.bus_width), "queries_done": wiring.Out(cfg.length_bits),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        depth = cfg.fifo_depth + bitparallel_latency(cfg, split=self._split) + 1
        dense, causal = Signal(), Signal()
        keys, queries = Signal(cfg.length_bits), Signal(cfg.length_bits)
        first = Signal(cfg.index_bits)
        theta = Signal(signed(cfg.score_bits))
        loaded, more = Signal(cfg.length_bits), Signal()
        slot_keys, next_key, last = Signal(cfg.length_bits), Signal(cfg.length_bits), Signal()

        kept_fifo, kept_beat = decoupled(m, "kept_fifo", layouts.kept_beat(cfg), depth, self.kept)
        if cfg.status_stream:
            status_fifo, status_beat = decoupled(m, "status_fifo", layouts.status_beat(cfg), depth,
                                                 self.status)
        credits: list[Value] = []

        dispatch, room = Signal(), Signal(init=1)
        m.d.comb += [
            dispatch.eq(self.busy & more & self.q.valid & room),
            self.q.ready.eq(dispatch & last),
        ]
        with m.If(dispatch & last):
            following = visible_keys(causal, first + loaded + 1, keys)
            m.d.sync += [
                loaded.eq(loaded + 1),
                more.eq(loaded + 1 < queries),
                next_key.eq(0),
                slot_keys.eq(following),
                last.eq(following == 1),
            ]
        with m.Elif(dispatch):
            m.d.sync += [next_key.eq(next_key + 1), last.eq(next_key + 2 == slot_keys)]

        element = data.ArrayLayout(signed(cfg.k_bits), cfg.head_dim)
        store = memory.Memory(shape=element, depth=cfg.max_seq_len, init=[])
        m.submodules.store = store
        write, read = store.write_port(), store.read_port()
        m.d.comb += [
            self.k.ready.eq(1),
            write.en.eq(self.k.valid),
            write.addr.eq(self.k.payload.index),
            write.data.eq(self.k.payload.key),
            read.addr.eq(next_key),
        ]

        token = Signal(token_layout(cfg))
        vector = Signal(layouts.query(cfg))
        m.d.sync += [
            token.valid.eq(dispatch), token.query.eq(loaded), token.key.eq(next_key),
            token.last.eq(last), vector.eq(self.q.payload),
        ]
        tokens = [token]
        vectors = [vector]
        for stage in range(1, BITPARALLEL_READ_STAGES + 1):
            tokens.append(Signal(token_layout(cfg), name=f"token{stage + 1}"))
            m.d.sync += tokens[-1].eq(tokens[-2])
            if stage < BITPARALLEL_READ_STAGES:
                vectors.append(Signal(layouts.query(cfg), name=f"vector{stage + 1}"))
                m.d.sync += vectors[-1].eq(vectors[-2])
        key = Signal(element)
        m.d.sync += key.eq(read.data)
        terms: list[Value] = []
        half = cfg.k_bits // 2
        for i in range(cfg.head_dim):
            part = Value.cast(key[i])
            if self._split:
                low = Signal(signed(cfg.q_bits + half + 1), name=f"product{i}_low")
                high = Signal(signed(cfg.q_bits + cfg.k_bits - half), name=f"product{i}_high")
                m.d.sync += [low.eq(vectors[-1][i] * part[:half]),
                             high.eq(vectors[-1][i] * part[half:].as_signed())]
                terms += [low, high << half]
            else:
                product = Signal(signed(cfg.q_bits + cfg.k_bits), name=f"product{i}")
                m.d.sync += product.eq(vectors[-1][i] * part)
                terms.append(product)
        score = registered_tree(m, terms, "tree")
        for level in range(bitparallel_tree_levels(cfg, split=self._split)):
            tokens.append(Signal(token_layout(cfg), name=f"token_tree{level + 1}"))
            m.d.sync += tokens[-1].eq(tokens[-2])
        decided = Signal(token_layout(cfg))
        decided_score = Signal(signed(cfg.score_bits))
        kept = Signal()
        m.d.sync += [
            decided.eq(tokens[-1]),
            decided_score.eq(score),
            kept.eq(dense | (score >= theta) if cfg.early_termination else 1),
        ]

        push_kept = Signal()
        completing = Signal()
        m.d.comb += [
            completing.eq(decided.valid & decided.last),
            push_kept.eq(decided.valid & (kept | decided.last)),
            kept_fifo.w_en.eq(push_kept),
            kept_beat.done.eq(completing),
            kept_beat.keys[0].valid.eq(decided.valid & kept),
            kept_beat.keys[0].query.eq(decided.query),
            kept_beat.keys[0].key.eq(decided.key),
            kept_beat.keys[0].score.eq(decided_score),
        ]
        credits.append(credit(m, "credit_kept", depth, dispatch,
                              (kept_fifo.r_en & kept_fifo.r_rdy) + (decided.valid & ~push_kept)))
        if cfg.status_stream:
            entry = status_beat.keys[0]
            m.d.comb += [
                status_fifo.w_en.eq(decided.valid),
                status_beat.done.eq(completing),
                entry.valid.eq(decided.valid),
                entry.kept.eq(kept),
                entry.query.eq(decided.query),
                entry.key.eq(decided.key),
                entry.planes.eq(cfg.k_bits),
            ]
            credits.append(credit(m, "credit_status", depth, dispatch, status_fifo.r_en & status_fifo.r_rdy))
        m.d.sync += room.eq(Cat(left != 0 for left in credits).all())

        refused, visible = Signal(), Signal(cfg.length_bits)
        m.d.sync += [
            refused.eq(job_refused(cfg, self.keys, self.queries, self.first, self.slot)),
            visible.eq(visible_keys(self.causal, self.first, self.keys)),
        ]
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.error.eq(refused), self.done.eq(0)]
            with m.If(~refused):
                m.d.sync += [
                    self.busy.eq(1), dense.eq(self.dense), causal.eq(self.causal), keys.eq(self.keys),
                    queries.eq(self.queries), first.eq(self.first), theta.eq(self.theta), loaded.eq(0),
                    more.eq(1), next_key.eq(0), slot_keys.eq(visible),
                    last.eq(visible == 1),
                    self.cycles.eq(0), self.kept_count.eq(0), self.planes_count.eq(0),
                    self.queries_done.eq(0),
                ]
        with m.Elif(self.busy):
            m.d.sync += [
                self.cycles.eq(self.cycles + 1),
                self.kept_count.eq(self.kept_count + (decided.valid & kept)),
                self.planes_count.eq(self.planes_count + Mux(decided.valid, cfg.k_bits, 0)),
                self.queries_done.eq(self.queries_done + completing),
            ]
            with m.If(completing & (self.queries_done + 1 == queries)):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m


class BitParallelFrontEnd(wiring.Component):
    """``BitParallelUnit`` behind the register block, with the front end's ports and register map: the
    ``bitparallel`` Verilog top (one multiplier per product, for DSPs) or, ``split``, the
    ``bitparallel-lut`` top (each product two registered half-width products, for LUT fabric)."""

    def __init__(self, cfg: EngineConfig, *, split: bool = False) -> None:
        self._cfg = cfg
        self._split = split
        super().__init__(top_signature(cfg, "frontend"))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.regs = regs = RegisterBlock(self._cfg)
        m.submodules.unit = unit = BitParallelUnit(self._cfg, split=self._split)
        attach_unit(m, self, self._cfg, regs, unit, releases=False)
        return m
