"""The softmax pass: exponents of the kept scores and the weighted sum of their ``v`` rows."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import fixedpoint, layouts
from leopard.hw.config import SCALE_SHIFT_BITS, EngineConfig, clog2
from leopard.hw.rtl.arith import round_shift


def result_layouts(cfg: EngineConfig) -> dict[str, data.ArrayLayout]:
    """Per result buffer: accumulators ``A``, exponent sum ``S``, kept count ``n`` and query index."""
    buffers = cfg.result_buffers
    return {
        "acc": data.ArrayLayout(data.ArrayLayout(signed(cfg.acc_bits), cfg.head_dim), buffers),
        "total": data.ArrayLayout(cfg.sum_bits, buffers),
        "count": data.ArrayLayout(cfg.length_bits, buffers),
        "query": data.ArrayLayout(cfg.index_bits, buffers),
    }


def exponent_address_bits(cfg: EngineConfig) -> int:
    """Exponent-buffer address: ``{result buffer, position}``, the position in the low bits."""
    return cfg.index_bits + max(1, clog2(cfg.result_buffers))


class SoftmaxPass(wiring.Component):
    """For each completed query, in order, walks its kept keys collector bank by bank
    (``head_dim / v_lanes`` cycles per key, no gap between keys or queries) and accumulates, in the next
    of ``result_buffers`` result buffers, ``S = Σ e_j`` and ``A_d = Σ e_j·v_jd`` with
    ``e_j = EXP[f_j] >> n_j`` (``docs/arithmetic.md`` §4); each ``(key, e_j)`` goes to the exponent
    buffer for the normalizer.

    Timing: query ``i`` starts (latches its counts) in the first cycle in which it is collected, the
    previous query issues its last key (or the pass is idle) and its result buffer is free; it issues
    ``max(n·D/v_lanes, 1)`` cycles from the next cycle on, releases its collector slot with the last
    issue, and its buffer is ``full`` ``PASS_LATENCY + 1`` cycles after that issue
    (``hw/timing.py``): T1 reads the entry, T2 the table and ``v`` row, T3 multiplies, T4 accumulates.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "clear": In(1),
            "scale_mantissa": In(cfg.scale_mantissa_bits),
            "scale_shift": In(SCALE_SHIFT_BITS),
            "collected": In(cfg.length_bits),
            "counts": In(data.ArrayLayout(cfg.length_bits, cfg.lanes)),
            "top": In(signed(cfg.score_bits)),
            "slot_query": Out(cfg.index_bits),
            "release": Out(1),
            "read_slot": Out(range(cfg.queries_in_flight)),
            "read_bank": Out(range(cfg.lanes)),
            "read_index": Out(cfg.index_bits),
            "entry": In(layouts.buffered_key(cfg)),
            "v_addr": Out(cfg.index_bits),
            "v_row": In(data.ArrayLayout(signed(cfg.v_bits), cfg.head_dim)),
            "exp_write": In(memory.WritePort.Signature(
                addr_width=exponent_address_bits(cfg), shape=layouts.weighted_key(cfg))),
            "full": Out(cfg.result_buffers),
            "drained": In(cfg.result_buffers),
            **{name: Out(layout) for name, layout in result_layouts(cfg).items()},
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        issue = self._issue(m)
        t4, key3, exponent, products = self._pipeline(m, issue)
        self._accumulate(m, issue, t4, key3, exponent, products)
        return m

    def _issue(self, m: Module) -> _Issue:
        """Walk the kept keys of the current query, collector bank by collector bank, ``v_groups``
        cycles per key; start the next query when it is collected and its result buffer is free."""
        cfg = self._cfg
        L = cfg.lanes
        buffers = cfg.result_buffers
        groups = cfg.v_groups
        active = Signal()
        upcoming = Signal(cfg.length_bits)
        next_buffer = Signal(range(buffers))
        buffer = Signal(range(buffers))
        counts = Signal(data.ArrayLayout(cfg.length_bits, L))
        top = Signal(signed(cfg.score_bits))
        slot = Signal(range(cfg.queries_in_flight))
        bank = Signal(range(L))
        index = Signal(cfg.length_bits)
        group = Signal(range(groups))
        empty = Signal()
        filling = Signal(buffers)

        def first_nonempty(after: Signal | None, source: data.View) -> tuple[Signal, Signal]:
            found, which = Signal(), Signal(range(L))
            for lane in reversed(range(L)):
                beyond = Const(1) if after is None else (after < lane)
                with m.If(beyond & (source[lane] != 0)):
                    m.d.comb += [found.eq(1), which.eq(lane)]
            return found, which

        more, following = first_nonempty(bank, counts)
        end_of_key = group == groups - 1
        end_of_bank = end_of_key & (index + 1 == Array(counts[lane] for lane in range(L))[bank])
        last = Signal()
        m.d.comb += last.eq(active & (empty | (end_of_bank & ~more)))

        count_now = sum(self.counts[lane] for lane in range(L))
        found, first_bank = first_nonempty(None, self.counts)
        in_use = filling | self.full
        start = Signal()
        m.d.comb += [
            start.eq((~active | last) & (self.collected > upcoming) & ~in_use.bit_select(next_buffer, 1)),
            self.slot_query.eq(upcoming),
            self.release.eq(last),
            self.read_slot.eq(slot),
            self.read_bank.eq(bank),
            self.read_index.eq(index),
        ]
        with m.If(self.clear):
            m.d.sync += [active.eq(0), upcoming.eq(0), next_buffer.eq(0)]
        with m.Elif(start):
            m.d.sync += [
                active.eq(1),
                upcoming.eq(upcoming + 1),
                next_buffer.eq(Mux(next_buffer == buffers - 1, 0, next_buffer + 1)),
                buffer.eq(next_buffer),
                counts.eq(self.counts),
                top.eq(self.top),
                slot.eq(upcoming),
                bank.eq(first_bank),
                index.eq(0),
                group.eq(0),
                empty.eq(~found),
            ]
        with m.Elif(last):
            m.d.sync += active.eq(0)
        with m.Elif(active):
            m.d.sync += group.eq(Mux(end_of_key, 0, group + 1))
            with m.If(end_of_bank):
                m.d.sync += [bank.eq(following), index.eq(0)]
            with m.Elif(end_of_key):
                m.d.sync += index.eq(index + 1)
        return _Issue(active, start, last, empty, group, buffer, next_buffer, upcoming, top, filling,
                      count_now)

    def _pipeline(self, m: Module, issue: _Issue) -> tuple[data.View, Signal, Signal, data.View]:
        """T1 reads the entry and forms ``y = (max − s)·M``, T2 rounds it to ``z`` and reads the
        exponent table and the ``v`` row, T3 forms ``e = EXP[f] >> n`` and ``e·v``; returns the T4
        token, key, exponent and products."""
        cfg = self._cfg
        D, X, E = cfg.head_dim, cfg.exp_index_bits, cfg.exp_frac_bits
        buffers = cfg.result_buffers
        groups, width = cfg.v_groups, cfg.head_dim // cfg.v_groups
        active, empty, last, group, buffer, top = (
            issue.active, issue.empty, issue.last, issue.group, issue.buffer, issue.top)
        token = data.StructLayout({
            "valid": 1, "entry": 1, "last": 1, "group": range(groups), "buffer": range(buffers),
        })
        t1, t2, t3, t4 = (Signal(token, name=f"token{i}") for i in range(1, 5))
        current = Signal(token)
        m.d.comb += [
            current.valid.eq(active),
            current.entry.eq(~empty),
            current.last.eq(last),
            current.group.eq(group),
            current.buffer.eq(buffer),
        ]
        top1 = Signal(signed(cfg.score_bits))
        m.d.sync += [t1.eq(current), t2.eq(t1), t3.eq(t2), t4.eq(t3), top1.eq(top)]

        distance = Signal(unsigned(cfg.score_bits + 1))
        y = Signal(unsigned(cfg.score_bits + 1 + cfg.scale_mantissa_bits))
        key1, key2, key3 = (Signal(cfg.index_bits, name=f"key{i}") for i in (1, 2, 3))
        m.d.comb += distance.eq(top1 - self.entry.score)
        m.d.sync += [y.eq(distance * self.scale_mantissa), key1.eq(self.entry.key), key2.eq(key1),
                     key3.eq(key2)]

        drop = Signal(SCALE_SHIFT_BITS)
        z = Signal(len(y))
        m.d.comb += [drop.eq(self.scale_shift - X), z.eq(round_shift(m, y, drop, name="exponent"))]
        octave = Signal(range(E + 2))
        m.d.sync += octave.eq(Mux((z >> X) > E, E + 1, z >> X))
        table = memory.Memory(shape=cfg.exp_bits, depth=1 << X, init=fixedpoint.exp_table(cfg).tolist())
        m.submodules.exp_table = table
        lookup = table.read_port()
        m.d.comb += [lookup.addr.eq(z[:X]), self.v_addr.eq(key1)]

        exponent = Signal(cfg.exp_bits)
        products = Signal(data.ArrayLayout(signed(cfg.exp_bits + cfg.v_bits + 1), width))
        m.d.sync += exponent.eq(lookup.data >> octave)
        row = [self.v_row[i] for i in range(D)]
        for d in range(width):
            column = Array(row[g * width + d] for g in range(groups))[t3.group]
            m.d.sync += products[d].eq((lookup.data >> octave) * column)

        return t4, key3, exponent, products

    def _accumulate(
        self, m: Module, issue: _Issue, t4: data.View, key3: Signal, exponent: Signal, products: data.View
    ) -> None:
        """T4: ``A_d += e·v_d`` and ``S += e`` into the token's result buffer, ``(key, e)`` into the
        exponent buffer; a buffer is ``full`` after its query's last token, free again once drained."""
        cfg = self._cfg
        buffers = cfg.result_buffers
        groups, width = cfg.v_groups, cfg.head_dim // cfg.v_groups
        start, next_buffer, upcoming, filling, count_now = (
            issue.start, issue.next_buffer, issue.upcoming, issue.filling, issue.count_now)
        fill = [Signal(cfg.length_bits, name=f"fill{b}") for b in range(buffers)]
        with m.If(start):
            for b in range(buffers):
                with m.If(next_buffer == b):
                    m.d.sync += [
                        self.acc[b].eq(0), self.total[b].eq(0), fill[b].eq(0),
                        self.count[b].eq(count_now), self.query[b].eq(upcoming),
                    ]
        position = Signal(cfg.length_bits)
        m.d.comb += [
            position.eq(Array(fill)[t4.buffer]),
            self.exp_write.addr.eq(Cat(position[:cfg.index_bits], t4.buffer)),
            self.exp_write.data.key.eq(key3),
            self.exp_write.data.exp.eq(exponent),
            self.exp_write.en.eq(t4.valid & t4.entry & (t4.group == 0)),
        ]
        with m.If(t4.valid & t4.entry):
            for b in range(buffers):
                with m.If(t4.buffer == b):
                    for g in range(groups):
                        with m.If(t4.group == g):
                            for d in range(width):
                                element = self.acc[b][g * width + d]
                                m.d.sync += element.eq(element + products[d])
                    with m.If(t4.group == 0):
                        m.d.sync += [self.total[b].eq(self.total[b] + exponent), fill[b].eq(fill[b] + 1)]
        for b in range(buffers):
            finished = t4.valid & t4.last & (t4.buffer == b)
            with m.If(self.clear | self.drained[b]):
                m.d.sync += self.full[b].eq(0)
            with m.Elif(finished):
                m.d.sync += self.full[b].eq(1)
            with m.If(self.clear | finished):
                m.d.sync += filling[b].eq(0)
            with m.Elif(start & (next_buffer == b)):
                m.d.sync += filling[b].eq(1)


@dataclass(frozen=True)
class _Issue:
    """The issue stage's signals the later stages use."""

    active: Signal
    start: Signal
    last: Signal
    empty: Signal
    group: Signal
    buffer: Signal
    next_buffer: Signal
    upcoming: Signal
    top: Signal
    filling: Signal
    count_now: Value
