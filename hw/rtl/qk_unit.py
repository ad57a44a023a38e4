"""The QK front end: query unit, key store, ``L`` bit-serial lanes, scheduler, completion tracking,
job control and counters, and the FIFO-decoupled kept-key and status streams."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.config import EngineConfig, clog2
from leopard.hw.rtl.arith import popcount, tree_sum
from leopard.hw.rtl.key_store import KeyStore
from leopard.hw.rtl.lane import BitSerialLane
from leopard.hw.rtl.query_unit import QueryUnit
from leopard.hw.rtl.scheduler import CompletionTracker, Scheduler


def decoupled(
    m: Module, name: str, layout: data.Layout, depth: int, out: stream.Interface
) -> tuple[fifo.SyncFIFOBuffered, Signal]:
    """A FIFO of ``layout`` beats feeding the ``out`` stream; the caller drives ``w_en`` and the beat."""
    queue = fifo.SyncFIFOBuffered(width=Shape.cast(layout).width, depth=depth)
    m.submodules[name] = queue
    beat = Signal(layout, name=f"{name}_beat")
    m.d.comb += [
        queue.w_data.eq(beat),
        out.payload.eq(queue.r_data),
        out.valid.eq(queue.r_rdy),
        queue.r_en.eq(out.ready),
    ]
    return queue, beat


def job_refused(cfg: EngineConfig, keys: Value, queries: Value, first: Value, slot: Value) -> Value:
    """Whether a job is out of range: ``keys`` or ``queries`` outside ``[1, max_seq_len]``,
    ``first + queries > max_seq_len`` or ``slot ≥ threshold_regs``."""
    return ((keys == 0) | (keys > cfg.max_seq_len) | (queries == 0) | (queries > cfg.max_seq_len)
            | (first + queries > cfg.max_seq_len) | (slot >= cfg.threshold_regs))


def visible_keys(causal: Value, position: Value, keys: Value) -> Value:
    """Keys query ``position`` (absolute) sees: ``min(position + 1, keys)`` when causal, else ``keys``."""
    return Mux(causal & (position + 1 < keys), position + 1, keys)


class QKUnit(wiring.Component):
    """Computes, for each query of a job, every visible key's score bit-serially with early termination.

    A job is started by ``start`` with the job inputs valid (they and ``theta`` are latched then); it
    takes ``queries`` queries from the ``q`` stream; query ``t`` sees keys ``0 … keys−1``, or, when
    ``causal``, keys ``0 … min(keys−1, first+t)``. A start with ``keys`` or ``queries`` outside
    ``[1, max_seq_len]``, ``first + queries > max_seq_len`` or ``slot ≥ threshold_regs`` is refused
    (``error``); ``started`` pulses when a job starts. Query ``i`` is dispatched only once the
    consumer has ``released`` query ``i − queries_in_flight`` (the front end alone releases a query
    when it completes). ``busy`` is high from the cycle after ``start`` to the cycle the last query completes;
    ``cycles`` counts those cycles. The timing is ``model/reference/cycles.py``'s, exactly, when the outputs
    never back-pressure; otherwise the whole unit waits (every register holds) the cycle after a FIFO
    holds ``fifo_depth − 1`` beats.

    Each cycle in which keys are decided pushes one beat on ``status`` (every decided key, with its
    planes) and, when a key was kept or a query completed, one beat on ``kept``.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        members: dict[str, wiring.Member] = {
            "q": In(stream.Signature(layouts.query(cfg))),
            "k": In(stream.Signature(layouts.key_beat(cfg))),
            "kept": Out(stream.Signature(layouts.kept_beat(cfg))),
            "start": In(1),
            "dense": In(1),
            "causal": In(1),
            "keys": In(cfg.length_bits),
            "queries": In(cfg.length_bits),
            "first": In(cfg.index_bits),
            "slot": In(max(1, clog2(cfg.threshold_regs))),
            "theta": In(signed(cfg.score_bits)),
            "released": In(cfg.length_bits),
            "started": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "cycles": Out(cfg.bus_width),
            "kept_count": Out(cfg.bus_width),
            "planes_count": Out(cfg.bus_width),
            "queries_done": Out(cfg.length_bits),
        }
        if cfg.status_stream:
            members["status"] = Out(stream.Signature(layouts.status_beat(cfg)))
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        m = Module()
        m.submodules.keys = keys = KeyStore(cfg)
        m.submodules.query_unit = query_unit = QueryUnit(cfg)
        m.submodules.scheduler = scheduler = Scheduler(cfg)
        m.submodules.tracker = tracker = CompletionTracker(cfg)
        lanes = [BitSerialLane(cfg) for _ in range(cfg.lanes)]
        for index, lane in enumerate(lanes):
            m.submodules[f"lane{index}"] = lane
        wiring.connect(m, wiring.flipped(self.k), keys.k)
        wiring.connect(m, wiring.flipped(self.q), query_unit.q)
        job = _JobState(cfg)
        self._outputs(m, lanes, tracker, job.enable)
        self._dispatch(m, keys, query_unit, scheduler, tracker, lanes, job)
        self._control(m, tracker, lanes, job)
        return m

    def _outputs(
        self, m: Module, lanes: list[BitSerialLane], tracker: CompletionTracker, enable: Signal
    ) -> None:
        """The decided keys of each cycle into the kept and status FIFOs. ``enable`` is a register: it
        falls (the whole unit waits the next cycle) while a FIFO holds ``fifo_depth − 1`` beats or more,
        so that a beat pushed in an enabled cycle always finds room."""
        cfg = self._cfg
        decided = [lane.decided for lane in lanes]
        kept_now = [lane.decided & lane.kept for lane in lanes]
        any_decided = Signal()
        m.d.comb += any_decided.eq(Cat(*decided).any())

        kept_fifo, kept_beat = decoupled(m, "kept_fifo", layouts.kept_beat(cfg), cfg.fifo_depth, self.kept)
        push_kept = Signal()
        m.d.comb += push_kept.eq(Cat(*kept_now).any() | (tracker.completing != 0))
        room = [kept_fifo.level < cfg.fifo_depth - 1]
        if cfg.status_stream:
            status_fifo, status_beat = decoupled(
                m, "status_fifo", layouts.status_beat(cfg), cfg.fifo_depth, self.status
            )
            room.append(status_fifo.level < cfg.fifo_depth - 1)
            m.d.comb += [
                status_fifo.w_en.eq(any_decided & enable),
                status_beat.done.eq(tracker.completing),
            ]
            for index, lane in enumerate(lanes):
                entry = status_beat.keys[index]
                m.d.comb += [
                    entry.valid.eq(lane.decided),
                    entry.kept.eq(lane.kept),
                    entry.query.eq(lane.query),
                    entry.key.eq(lane.key),
                    entry.planes.eq(lane.planes),
                ]
        m.d.sync += enable.eq(Cat(*room).all())
        m.d.comb += [
            kept_fifo.w_en.eq(push_kept & enable),
            kept_beat.done.eq(tracker.completing),
        ]
        for index, lane in enumerate(lanes):
            entry = kept_beat.keys[index]
            m.d.comb += [
                entry.valid.eq(kept_now[index]),
                entry.query.eq(lane.query),
                entry.key.eq(lane.key),
                entry.score.eq(lane.score),
            ]

    def _dispatch(
        self, m: Module, keys: KeyStore, query_unit: QueryUnit, scheduler: Scheduler,
        tracker: CompletionTracker, lanes: list[BitSerialLane], job: _JobState,
    ) -> None:
        """The slot query's next keys into the lanes' empty head registers (``KeyStartSignature``), the
        next query into the slot once its predecessor ``queries_in_flight`` back is released."""
        cfg = self._cfg
        in_flight_ok = job.slot_query < self.released + cfg.queries_in_flight
        m.d.comb += [
            keys.en.eq(job.enable),
            scheduler.allowed.eq(self.busy & query_unit.valid & in_flight_ok & job.enable),
            scheduler.remaining.eq(job.slot_keys - job.next_key),
            query_unit.accept.eq(self.busy & (job.loaded < job.queries) & job.enable),
            query_unit.consume.eq(scheduler.consume),
            query_unit.theta.eq(job.theta),
            tracker.enable.eq(job.enable),
            tracker.dispatch_query.eq(job.slot_query),
            tracker.dispatch_count.eq(scheduler.count),
            tracker.consume.eq(scheduler.consume),
        ]
        for index, lane in enumerate(lanes):
            m.d.comb += [
                scheduler.free[index].eq(lane.ready),
                tracker.finishing[index].eq(lane.decided),
                tracker.finishing_query[index].eq(lane.query),
                lane.enable.eq(job.enable),
                lane.dense.eq(job.dense),
                lane.plane.eq(keys.data[index]),
                lane.start.valid.eq(scheduler.start[index]),
                lane.start.key.eq(job.next_key + scheduler.offset[index]),
                lane.start.query.eq(job.slot_query),
                lane.start.q.eq(query_unit.vector),
                lane.start.pairs.eq(query_unit.pairs),
                lane.start.pos.eq(query_unit.pos),
                lane.start.limit.eq(query_unit.limit),
                lane.start.mask.eq(Mux(job.dense, (1 << cfg.k_bits) - 1, keys.info[index].mask)),
                lane.start.sign.eq(job.dense | keys.info[index].sign),
                keys.info_addr[index].eq(lane.start.key),
                keys.addr[index].eq(lane.addr),
            ]

        with m.If(query_unit.taken):
            visible = visible_keys(job.causal, job.first + job.loaded, job.keys)
            m.d.sync += [
                job.slot_query.eq(job.loaded),
                job.slot_keys.eq(visible),
                job.next_key.eq(0),
                job.loaded.eq(job.loaded + 1),
            ]
        with m.Elif(job.enable):
            m.d.sync += job.next_key.eq(job.next_key + scheduler.count)

    def _control(
        self, m: Module, tracker: CompletionTracker, lanes: list[BitSerialLane], job: _JobState
    ) -> None:
        """Start (or refuse) a job, latch its inputs, count its cycles, kept keys and planes, and end it
        when its last query completes."""
        cfg = self._cfg
        refused = job_refused(cfg, self.keys, self.queries, self.first, self.slot)
        m.d.comb += [
            tracker.clear.eq(self.start & ~self.busy),
            self.started.eq(self.start & ~self.busy & ~refused),
        ]
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.error.eq(refused), self.done.eq(0)]
            with m.If(~refused):
                m.d.sync += [
                    self.busy.eq(1),
                    job.dense.eq(self.dense),
                    job.causal.eq(self.causal),
                    job.keys.eq(self.keys),
                    job.queries.eq(self.queries),
                    job.first.eq(self.first),
                    job.theta.eq(self.theta),
                    job.loaded.eq(0),
                    self.cycles.eq(0),
                    self.kept_count.eq(0),
                    self.planes_count.eq(0),
                ]
        with m.Elif(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(job.enable):
                kept_now = [lane.decided & lane.kept for lane in lanes]
                m.d.sync += [
                    self.kept_count.eq(self.kept_count + popcount(kept_now)),
                    self.planes_count.eq(
                        self.planes_count + tree_sum([Mux(lane.decided, lane.planes, 0) for lane in lanes])
                    ),
                ]
                with m.If(tracker.done + tracker.completing == job.queries):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        m.d.comb += self.queries_done.eq(tracker.done)


class _JobState:
    """The running job's latched inputs and the dispatch position: ``loaded`` queries taken so far, the
    slot query, its visible key count and its next key; ``enable`` is low while the unit waits."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.enable = Signal(name="enable", init=1)
        self.dense = Signal(name="job_dense")
        self.causal = Signal(name="job_causal")
        self.keys = Signal(cfg.length_bits, name="job_keys")
        self.queries = Signal(cfg.length_bits, name="job_queries")
        self.first = Signal(cfg.index_bits, name="job_first")
        self.theta = Signal(signed(cfg.score_bits), name="job_theta")
        self.loaded = Signal(cfg.length_bits, name="loaded")
        self.slot_query = Signal(cfg.index_bits, name="slot_query")
        self.slot_keys = Signal(cfg.length_bits, name="slot_keys")
        self.next_key = Signal(cfg.length_bits, name="next_key")
