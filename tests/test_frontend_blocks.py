"""Unit tests of the front-end blocks in Amaranth's simulator."""

import random

import numpy as np
import pytest
import reference
from simulation import simulate

from leopard.hw import layouts
from leopard.hw.config import preset
from leopard.hw.packing import decode
from leopard.hw.regmap import params_values, register_map
from leopard.hw.rtl.key_store import KeyStore
from leopard.hw.rtl.lane import BitSerialLane
from leopard.hw.rtl.query_unit import QueryUnit
from leopard.hw.rtl.register_block import RegisterBlock
from leopard.hw.rtl.scheduler import CompletionTracker, Scheduler


def _planes(key, bits):
    """Plane t (t = 0 the sign plane) of a key as a D-bit integer."""
    return [sum((((x >> (bits - 1 - t)) & 1) << i) for i, x in enumerate(key)) for t in range(bits)]


@pytest.mark.parametrize("name", ["tiny", "small", "minilm"])
@pytest.mark.parametrize(("dense", "skip"), [(False, False), (True, False), (False, True)])
def test_lane_matches_the_bit_serial_reference_back_to_back(name, dense, skip):
    cfg = preset(name).replace(skip_zero_planes=skip)
    rng = random.Random(7)
    lane = BitSerialLane(cfg)
    lo_q, lo_k = -(1 << (cfg.q_bits - 1)), -(1 << (cfg.k_bits - 1))
    cases = []
    for _ in range(40):
        q = [rng.choice([lo_q, rng.randint(lo_q, -lo_q - 1)]) for _ in range(cfg.head_dim)]
        narrow = rng.choice([0, 1, cfg.k_bits - 2])
        key = [rng.choice([lo_k, rng.randint(lo_k, -lo_k - 1)]) >> narrow for _ in range(cfg.head_dim)]
        score = sum(a * b for a, b in zip(q, key, strict=True))
        theta = rng.choice([cfg.threshold_min, cfg.threshold_max, score, score + 1,
                            rng.randint(cfg.threshold_min, cfg.threshold_max)])
        theta = min(max(theta, cfg.threshold_min), cfg.threshold_max)
        cases.append((q, key, theta))
    planes_of = [_planes(key, cfg.k_bits) for _, key, _ in cases]
    plane_bits = layouts.plane_bits(cfg)
    resident = {}
    results = []

    async def bench(ctx):
        ctx.set(lane.enable, 1)
        ctx.set(lane.dense, dense)
        pending = list(range(len(cases)))
        plane = 0
        waited = 0
        while len(results) < len(cases):
            assert waited <= len(cases) * cfg.k_bits + 3
            ctx.set(lane.plane, plane)
            start = bool(pending) and ctx.get(lane.ready)
            ctx.set(lane.start.valid, start)
            if start:
                j = pending.pop(0)
                q, _, theta = cases[j]
                resident[j % cfg.max_seq_len] = j
                ctx.set(lane.start.key, j % cfg.max_seq_len)
                ctx.set(lane.start.q, q)
                ctx.set(lane.start.pairs, reference.pair_sums(q))
                ctx.set(lane.start.pos, sum(max(x, 0) for x in q))
                ctx.set(lane.start.limit, theta + sum(max(x, 0) for x in q) - 1)
                processed, extension = reference.processed_planes(cases[j][1], cfg.k_bits)
                ctx.set(lane.start.mask, sum(1 << t for t in processed) if skip else (1 << cfg.k_bits) - 1)
                ctx.set(lane.start.sign, processed[0] == extension if skip else 1)
            if ctx.get(lane.decided):
                results.append((resident[ctx.get(lane.key)], ctx.get(lane.planes), ctx.get(lane.kept),
                                ctx.get(lane.score)))
            address = ctx.get(lane.addr)
            await ctx.tick()
            row, t = address >> plane_bits, address & ((1 << plane_bits) - 1)
            plane = planes_of[resident[row]][t] if row in resident and t < cfg.k_bits else 0
            waited += 1

    simulate(lane, bench)
    assert [r[0] for r in results] == list(range(len(cases)))
    for j, planes, kept, score in results:
        q, key, theta = cases[j]
        if skip:
            assert (planes, bool(kept)) == reference.lane_skipping(q, key, theta, cfg.k_bits)
        else:
            assert (planes, bool(kept)) == reference.lane(q, key, theta, cfg.k_bits, dense=dense)
        if kept:
            assert score == sum(a * b for a, b in zip(q, key, strict=True))


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_key_store_writes_planes_at_one_per_cycle(name):
    cfg = preset(name)
    store = KeyStore(cfg)
    rng = np.random.default_rng(3)
    keys = rng.integers(-(1 << (cfg.k_bits - 1)), 1 << (cfg.k_bits - 1), (cfg.max_seq_len, cfg.head_dim))
    accepted = []

    async def bench(ctx):
        ctx.set(store.en, 1)
        cycle = 0
        for j in range(len(keys)):
            ctx.set(store.k.payload, {"index": j, "key": keys[j].tolist()})
            ctx.set(store.k.valid, 1)
            while not ctx.get(store.k.ready):
                await ctx.tick()
                cycle += 1
            accepted.append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(store.k.valid, 0)
        for _ in range(cfg.k_bits + 1):
            await ctx.tick()
        plane_bits = layouts.plane_bits(cfg)
        for j in range(len(keys)):
            want = _planes(keys[j].tolist(), cfg.k_bits)
            for t in range(cfg.k_bits):
                for lane in range(cfg.lanes):
                    ctx.set(store.addr[lane], (j << plane_bits) | t)
                await ctx.tick()
                for lane in range(cfg.lanes):
                    assert ctx.get(store.data[lane]) == want[t]

    simulate(store, bench)
    assert np.diff(accepted).tolist() == [cfg.k_bits] * (len(keys) - 1)


def test_query_unit_computes_positive_sum_limit_and_pair_sums():
    cfg = preset("small")
    unit = QueryUnit(cfg)
    rng = random.Random(5)
    vectors = [[rng.randint(-16, 15) for _ in range(cfg.head_dim)] for _ in range(20)]
    theta = -37

    async def bench(ctx):
        ctx.set(unit.accept, 1)
        ctx.set(unit.theta, theta)
        for vector in vectors:
            ctx.set(unit.q.payload, vector)
            ctx.set(unit.q.valid, 1)
            ctx.set(unit.consume, ctx.get(unit.valid))
            assert ctx.get(unit.q.ready)
            await ctx.tick()
            positive = sum(max(x, 0) for x in vector)
            assert ctx.get(unit.valid)
            assert ctx.get(unit.pos) == positive
            assert ctx.get(unit.limit) == theta + positive - 1
            assert list(ctx.get(unit.pairs)) == reference.pair_sums(vector)
            assert decode(layouts.query(cfg), ctx.get(unit.vector.as_value())) == vector
        ctx.set(unit.q.valid, 0)
        ctx.set(unit.consume, 0)
        await ctx.tick()
        assert ctx.get(unit.valid)
        assert not ctx.get(unit.q.ready)

    simulate(unit, bench)


def test_scheduler_hands_keys_to_the_lowest_free_lanes():
    cfg = preset("minilm")
    scheduler = Scheduler(cfg)
    rng = random.Random(9)

    async def bench(ctx):
        for _ in range(300):
            free = rng.getrandbits(cfg.lanes)
            remaining = rng.randint(0, 12)
            allowed = rng.random() < 0.8
            ctx.set(scheduler.free, free)
            ctx.set(scheduler.remaining, remaining)
            ctx.set(scheduler.allowed, allowed)
            lanes = [lane for lane in range(cfg.lanes) if free >> lane & 1]
            chosen = lanes[:remaining] if allowed else []
            assert ctx.get(scheduler.start) == sum(1 << lane for lane in chosen)
            for order, lane in enumerate(chosen):
                assert ctx.get(scheduler.offset[lane]) == order
            assert ctx.get(scheduler.count) == len(chosen)
            assert ctx.get(scheduler.consume) == (allowed and remaining > 0 and len(lanes) >= remaining)

    simulate(scheduler, bench, clock=False)


def test_completion_tracker_completes_queries_in_order():
    """Query 1's only key is decided before query 0's: query 1 completes with query 0, not before."""
    cfg = preset("small")
    tracker = CompletionTracker(cfg)

    async def bench(ctx):
        ctx.set(tracker.clear, 1)
        await ctx.tick()
        ctx.set(tracker.clear, 0)
        ctx.set(tracker.enable, 1)
        for query in (0, 1):
            ctx.set(tracker.dispatch_query, query)
            ctx.set(tracker.dispatch_count, 1)
            ctx.set(tracker.consume, 1)
            await ctx.tick()
        ctx.set(tracker.consume, 0)
        ctx.set(tracker.dispatch_count, 0)
        for lane, query, completing in ((1, 1, 0), (0, 0, 2)):
            ctx.set(tracker.finishing, 1 << lane)
            ctx.set(tracker.finishing_query[lane], query)
            assert ctx.get(tracker.completing) == completing
            await ctx.tick()
        ctx.set(tracker.finishing, 0)
        assert ctx.get(tracker.done) == 2

    simulate(tracker, bench)


def test_register_block_reads_writes_and_strobes():
    cfg = preset("tiny")
    block = RegisterBlock(cfg)
    regs = register_map(cfg)

    async def read(ctx, offset):
        ctx.set(block.bus.addr, offset)
        ctx.set(block.bus.r_en, 1)
        await ctx.tick()
        ctx.set(block.bus.r_en, 0)
        return ctx.get(block.bus.r_data)

    async def write(ctx, offset, value):
        ctx.set(block.bus.addr, offset)
        ctx.set(block.bus.w_data, value)
        ctx.set(block.bus.w_en, 1)
        strobe = ctx.get(block.ctrl)
        await ctx.tick()
        ctx.set(block.bus.w_en, 0)
        return strobe

    async def bench(ctx):
        for name, value in params_values(cfg).items():
            assert await read(ctx, regs[name].offset) == value
        await write(ctx, regs["JOB_KEYS"].offset, 5)
        await write(ctx, regs["MODE"].offset, 0b11)
        assert ctx.get(block.job_keys) == 5 and ctx.get(block.mode_dense) and ctx.get(block.mode_causal)
        assert await read(ctx, regs["MODE"].offset) == 0b11
        for slot in range(cfg.threshold_regs):
            await write(ctx, regs["THRESHOLD"].offset + slot, (-100 - slot) & 0xFFFFFFFF)
            await write(ctx, regs["SCALE"].offset + slot, 1000 + slot)
        for slot in range(cfg.threshold_regs):
            ctx.set(block.threshold_slot, slot)
            ctx.set(block.scale_slot, slot)
            assert ctx.get(block.threshold) == -100 - slot
            assert ctx.get(block.scale) == 1000 + slot
            raw = await read(ctx, regs["THRESHOLD"].offset + slot)
            assert raw == (-100 - slot) & ((1 << cfg.score_bits) - 1)
        assert await write(ctx, regs["CTRL"].offset, 1) == 1
        assert ctx.get(block.ctrl) == 0
        ctx.set(block.cycles, 1234)
        assert await read(ctx, regs["CYCLES"].offset) == 1234

    simulate(block, bench)
