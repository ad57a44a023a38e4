"""Key hand-off to the lanes' empty head registers, and in-order tracking of query completion."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw.config import EngineConfig, clog2
from leopard.hw.rtl.arith import popcount


class Scheduler(wiring.Component):
    """Hands the slot query's next keys to the lanes whose head register is empty (``free``), lowest
    lane first (combinational).

    With ``n`` free lanes and ``remaining`` keys left in the slot's query, the first ``min(n, remaining)``
    free lanes are handed keys ``next_key + 0, 1, …``; ``consume`` says the query's last key left this
    cycle.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "allowed": In(1),
            "free": In(cfg.lanes),
            "remaining": In(cfg.length_bits),
            "start": Out(cfg.lanes),
            "offset": Out(data.ArrayLayout(cfg.index_bits, cfg.lanes)),
            "count": Out(cfg.length_bits),
            "consume": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        for lane in range(cfg.lanes):
            before = popcount([self.free[i] for i in range(lane)]) if lane else 0
            m.d.comb += [
                self.offset[lane].eq(before),
                self.start[lane].eq(self.allowed & self.free[lane] & (before < self.remaining)),
            ]
        m.d.comb += [
            self.count.eq(popcount([self.start[i] for i in range(cfg.lanes)])),
            self.consume.eq(self.allowed & (self.remaining != 0) & (self.count == self.remaining)),
        ]
        return m


class CompletionTracker(wiring.Component):
    """Counts, per in-flight query (slot = query index mod ``M = queries_in_flight``), keys dispatched
    and not yet decided (``finishing``: the lanes' registered decisions), and completes queries in order:
    query ``i`` completes in the cycle its last key's decision arrives, or with query ``i − 1``,
    whichever is later. ``completing`` (0 … M) says how many complete this cycle; ``done`` (queries
    completed) updates the next cycle.

    ``clear`` resets it for a new job; nothing changes while ``enable`` is low.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "enable": In(1),
            "clear": In(1),
            "dispatch_query": In(cfg.index_bits),
            "dispatch_count": In(cfg.length_bits),
            "consume": In(1),
            "finishing": In(cfg.lanes),
            "finishing_query": In(data.ArrayLayout(cfg.index_bits, cfg.lanes)),
            "completing": Out(range(cfg.queries_in_flight + 1)),
            "done": Out(cfg.length_bits),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        slots = cfg.queries_in_flight
        slot_bits = clog2(slots)
        m = Module()
        width = cfg.length_bits + 1
        outstanding = [Signal(width, name=f"outstanding{s}") for s in range(slots)]
        dispatched_all = [Signal(name=f"dispatched_all{s}") for s in range(slots)]
        undecided = [Signal(width, name=f"undecided{s}") for s in range(slots)]
        ready = [Signal(name=f"ready{s}") for s in range(slots)]
        for slot in range(slots):
            matches = [
                self.finishing[lane] & (self.finishing_query[lane][:slot_bits] == slot)
                for lane in range(cfg.lanes)
            ]
            m.d.comb += [
                undecided[slot].eq(outstanding[slot] - popcount(matches)),
                ready[slot].eq(dispatched_all[slot] & (undecided[slot] == 0)),
            ]
        # The slot's query is never fully dispatched yet, so this cycle's dispatch cannot complete a
        # query: completion depends on decided keys only.
        oldest = self.done[:slot_bits]
        complete = [Signal(name=f"complete{k}") for k in range(slots)]
        for k in range(slots):
            in_order = Array(ready)[(oldest + k)[:slot_bits]]
            m.d.comb += complete[k].eq(in_order & (complete[k - 1] if k else 1))
        m.d.comb += self.completing.eq(popcount(complete))

        with m.If(self.clear):
            m.d.sync += [self.done.eq(0)] + [s.eq(0) for s in outstanding + dispatched_all]
        with m.Elif(self.enable):
            m.d.sync += self.done.eq(self.done + self.completing)
            for slot in range(slots):
                here = self.dispatch_query[:slot_bits] == slot
                completed = Array(complete)[(slot - oldest)[:slot_bits]]
                m.d.sync += [
                    outstanding[slot].eq(undecided[slot] + Mux(here, self.dispatch_count, 0)),
                    dispatched_all[slot].eq((dispatched_all[slot] | (self.consume & here)) & ~completed),
                ]
        return m
