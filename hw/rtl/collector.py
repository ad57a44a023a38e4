"""The kept-key collector: the back end's input buffer, one bank per lane, one slot per query in flight."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig, clog2


class KeptCollector(wiring.Component):
    """Writes every kept key of a beat in the same cycle (lane ``l``'s entry into bank ``l``, at slot
    ``query mod M``), tracks per slot the keys in each bank and the largest score, and counts the
    queries whose kept keys are all in (``collected``, from the beat's ``done``).

    The softmax pass reads the slot of query ``slot_query``: ``counts`` and ``top`` are combinational,
    ``entry`` is bank ``read_bank`` at ``read_index`` one cycle after the address. ``release`` frees the
    oldest unreleased query's slot (``released`` counts them). ``kept`` is always ready: the front end
    only starts query ``i`` once query ``i − M`` is released, so a slot is never written while in use.

    Latency: a beat taken in cycle ``c`` is readable, and counted in ``collected``, from cycle ``c+1``.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        super().__init__({
            "kept": In(stream.Signature(layouts.kept_beat(cfg))),
            "clear": In(1),
            "collected": Out(cfg.length_bits),
            "release": In(1),
            "released": Out(cfg.length_bits),
            "slot_query": In(cfg.index_bits),
            "counts": Out(data.ArrayLayout(cfg.length_bits, cfg.lanes)),
            "top": Out(signed(cfg.score_bits)),
            "read_slot": In(range(cfg.queries_in_flight)),
            "read_bank": In(range(cfg.lanes)),
            "read_index": In(cfg.index_bits),
            "entry": Out(layouts.buffered_key(cfg)),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        slots = cfg.queries_in_flight
        slot_bits = clog2(slots)
        m = Module()
        beat = self.kept.payload
        take = self.kept.valid
        m.d.comb += self.kept.ready.eq(1)

        counts = [[Signal(cfg.length_bits, name=f"count{lane}_{slot}") for slot in range(slots)]
                  for lane in range(cfg.lanes)]
        top = [Signal(signed(cfg.score_bits), name=f"top{slot}") for slot in range(slots)]
        seen = [Signal(name=f"seen{slot}") for slot in range(slots)]
        released_slot = self.released[:slot_bits]
        read_data = []
        read_bank = Signal(range(cfg.lanes))
        m.d.sync += read_bank.eq(self.read_bank)
        for lane in range(cfg.lanes):
            bank = memory.Memory(shape=layouts.buffered_key(cfg), depth=slots << cfg.index_bits, init=[])
            m.submodules[f"bank{lane}"] = bank
            entry = beat.keys[lane]
            slot = entry.query[:slot_bits]
            write = bank.write_port()
            fill = Signal(cfg.length_bits, name=f"fill{lane}")
            m.d.comb += [
                fill.eq(Array(counts[lane])[slot]),
                write.addr.eq(Cat(fill[:cfg.index_bits], slot)),
                write.data.key.eq(entry.key),
                write.data.score.eq(entry.score),
                write.en.eq(take & entry.valid),
            ]
            read = bank.read_port()
            m.d.comb += read.addr.eq(Cat(self.read_index, self.read_slot))
            read_data.append(read.data.as_value())
        m.d.comb += self.entry.eq(Array(read_data)[read_bank])

        query_slot = self.slot_query[:slot_bits]
        m.d.comb += [
            self.top.eq(Array(top)[query_slot]),
            *[self.counts[lane].eq(Array(counts[lane])[query_slot]) for lane in range(cfg.lanes)],
        ]

        with m.If(self.clear):
            m.d.sync += [self.collected.eq(0), self.released.eq(0)]
            m.d.sync += [s.eq(0) for s in seen]
            m.d.sync += [c.eq(0) for row in counts for c in row]
        with m.Else():
            with m.If(take):
                m.d.sync += self.collected.eq(self.collected + beat.done)
            m.d.sync += self.released.eq(self.released + self.release)
            for slot in range(slots):
                freed = self.release & (released_slot == slot)
                best, any_new = top[slot], seen[slot]
                for lane in range(cfg.lanes):
                    entry = beat.keys[lane]
                    hit = take & entry.valid & (entry.query[:slot_bits] == slot)
                    best_here = Signal(signed(cfg.score_bits), name=f"best{slot}_{lane}")
                    new_here = Signal(name=f"seen{slot}_{lane}")
                    higher = hit & (~any_new | (entry.score > best))
                    m.d.comb += [best_here.eq(Mux(higher, entry.score, best)), new_here.eq(any_new | hit)]
                    best, any_new = best_here, new_here
                    with m.If(freed):
                        m.d.sync += counts[lane][slot].eq(0)
                    with m.Elif(hit):
                        m.d.sync += counts[lane][slot].eq(counts[lane][slot] + 1)
                with m.If(freed):
                    m.d.sync += seen[slot].eq(0)
                with m.Else():
                    m.d.sync += [top[slot].eq(best), seen[slot].eq(any_new)]
        return m
