"""The back end alone in Amaranth's simulator: kept (key, score) sets fed as the front end would, every
probability and output vector equal to the golden softmax."""

import numpy as np
import pytest
from simulation import simulate

from leopard.hw import fixedpoint
from leopard.hw.config import preset
from leopard.hw.rtl.backend import BackEnd
from leopard.model.reference import golden


def _cases(cfg, rng):
    """(name, scores, kept, scale) per query set: each a [Q, N] score matrix and its kept mask."""
    n = cfg.max_seq_len
    low, high = -(1 << (cfg.score_bits - 2)), (1 << (cfg.score_bits - 2))
    yield "random", rng.integers(low, high, (4, n)), rng.random((4, n)) < 0.4, 0.002
    single = np.zeros((2, n), bool)
    single[0, n // 2] = single[1, 0] = True
    yield "single kept key", rng.integers(low, high, (2, n)), single, 0.01
    yield "all equal scores", np.full((2, n), 77), np.ones((2, n), bool), 0.05
    extremes = np.where(rng.random((3, n)) < 0.5, cfg.threshold_min, cfg.threshold_max)
    yield "largest score range", extremes, np.ones((3, n), bool), 1e-3
    octaves = -np.arange(n)[None].repeat(2, axis=0) * np.array([[1], [2]])
    yield "one octave per score unit, down to underflow", octaves, np.ones((2, n), bool), np.log(2.0)
    none = np.zeros((3, n), bool)
    none[1, 1] = True
    yield "no kept key", rng.integers(low, high, (3, n)), none, 0.01


def _run_backend(cfg, values, scores, kept, register):
    backend = BackEnd(cfg)
    packets = []

    async def bench(ctx):
        ctx.set(backend.scale_mantissa, register.mantissa)
        ctx.set(backend.scale_shift, register.shift)
        ctx.set(backend.out.ready, 1)
        ctx.set(backend.clear, 1)
        await ctx.tick()
        ctx.set(backend.clear, 0)
        for j, row in enumerate(values):
            ctx.set(backend.v.payload, {"index": j, "value": row.tolist()})
            ctx.set(backend.v.valid, 1)
            await ctx.tick()
        ctx.set(backend.v.valid, 0)
        for query in range(len(scores)):
            while ctx.get(backend.released) + cfg.queries_in_flight <= query:
                await ctx.tick()
            keys = np.flatnonzero(kept[query]).tolist()
            beats = [keys[i:i + cfg.lanes] for i in range(0, len(keys), cfg.lanes)] or [[]]
            for number, beat in enumerate(beats):
                entries = [{"valid": 0, "query": 0, "key": 0, "score": 0}] * cfg.lanes
                for lane, key in enumerate(beat):
                    entries[lane] = {"valid": 1, "query": query, "key": key,
                                     "score": int(scores[query, key])}
                done = int(number == len(beats) - 1)
                ctx.set(backend.kept.payload, {"keys": entries, "done": done})
                ctx.set(backend.kept.valid, 1)
                for packet in _collect(ctx, backend):
                    packets.append(packet)
                await ctx.tick()
            ctx.set(backend.kept.valid, 0)
        for _ in range(8 * cfg.max_seq_len * cfg.v_groups + 64):
            packets.extend(_collect(ctx, backend))
            await ctx.tick()

    simulate(backend, bench)
    return packets


def _collect(ctx, backend):
    if ctx.get(backend.out.valid):
        yield ctx.get(backend.out.payload)


@pytest.mark.parametrize("name", ["tiny", "small", "minilm"])
def test_backend_equals_golden_softmax(name):
    cfg = preset(name)
    rng = np.random.default_rng(13)
    for case, scores, kept, scale in _cases(cfg, rng):
        values = rng.integers(-(1 << (cfg.v_bits - 1)), 1 << (cfg.v_bits - 1), (cfg.max_seq_len, cfg.head_dim))
        register = fixedpoint.encode_scale(cfg, scale)
        problems = golden.Problems(
            q=np.zeros((1, 1, cfg.head_dim)), k=np.zeros((1, 1, cfg.head_dim)), v=values[None],
            valid_len=np.array([cfg.max_seq_len]), causal=False, threshold=np.zeros(1, np.int64),
            scale_mantissa=np.array([register.mantissa]), scale_shift=np.array([register.shift]),
        )
        probs, out = golden.softmax(cfg, problems, scores[None].astype(np.int64), kept[None])
        packets = _run_backend(cfg, values, scores, kept, register)
        got_probs = {(p.query, p.key): p.prob for p in packets if p.has_key}
        want_probs = {(q, k): int(probs[0, q, k]) for q, k in zip(*np.nonzero(kept), strict=True)}
        assert got_probs == want_probs, case
        finals = [p for p in packets if p.last]
        assert [p.query for p in finals] == list(range(len(scores))), case
        for packet in finals:
            assert list(packet.vector) == out[0, packet.query].tolist(), case
            assert packet.kept == kept[packet.query].sum(), case
