"""The regression's corner cases as one trace per config: every case a problem, so one simulator
launch covers them all."""

from __future__ import annotations

from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model.reference import golden, synthetic
from leopard.model.reference.trace import Trace
from leopard.verif import playback, player_sim

CASES = (
    "half pruned",
    "90% pruned",
    "all pruned (threshold at the register's top)",
    "none pruned (threshold at the register's bottom)",
    "one token",
    "full length",
    "extreme values (most negative q and k)",
)


def regression_trace(
    cfg: EngineConfig, *, seed: int, causal: bool = False, length: int | None = None
) -> Trace:
    """One problem per entry of ``CASES``; ``length`` (default ``min(N, 24)``) for the short ones."""
    full = cfg.max_seq_len
    short = min(full, 24) if length is None else length
    base = synthetic.random_trace(cfg, seed=seed, problems=len(CASES), length=full, causal=causal)
    q, k, v = base.q.copy(), base.k.copy(), base.v.copy()
    valid_len = np.array([short, short, short, short, 1, full, short], np.int32)
    lowest_q, lowest_k = -(1 << (cfg.q_bits - 1)), -(1 << (cfg.k_bits - 1))
    extreme = len(CASES) - 1
    q[extreme, : short // 2] = lowest_q
    k[extreme, ::2] = lowest_k
    problems = golden.Problems(
        q=q, k=k, v=v, valid_len=valid_len, causal=causal,
        threshold=np.zeros(len(CASES), np.int64), scale_mantissa=np.zeros(len(CASES), np.int64),
        scale_shift=np.zeros(len(CASES), np.int64),
    )
    visible = problems.visible()
    score = golden.scores(q, k)
    threshold = np.empty(len(CASES), np.int64)
    for p, fraction in enumerate((0.5, 0.9, None, None, 0.5, 0.8, 0.6)):
        values = score[p][visible[p]]
        if fraction is None:
            continue
        threshold[p] = int(np.quantile(values, fraction, method="inverted_cdf"))
    threshold[2], threshold[3] = cfg.threshold_max, cfg.threshold_min
    return Trace(
        config=cfg, q=q, k=k, v=v, valid_len=valid_len, causal=causal, threshold=threshold,
        scale=base.scale, source=f"regression cases seed={seed}: " + "; ".join(CASES),
    )


def regression_run(
    cfg: EngineConfig, top: str, sim: str, *, seeds: tuple[int, int, int] = (1, 2, 4),
    stalled_modes: tuple[str, ...] = ("early_termination",),
) -> dict[str, Any]:
    """The regression on ``top`` under ``sim`` in one launch of the trace player: the cases straight
    (both modes), causal in two jobs per problem (both modes), and straight again in three jobs per
    problem with random idle inputs (30 %) and back-pressure (50 %); returns ``player_sim.launch``'s
    outcome (its first two segments are stall-free, so their cycles are checked too)."""
    straight = regression_trace(cfg, seed=seeds[0]).problems()
    causal = regression_trace(cfg, seed=seeds[1], causal=True).problems()
    expected_straight = player_sim.expected_results(cfg, straight)
    every = tuple(range(straight.count))
    segments = [
        player_sim.Segment(straight, expected_straight, playback.Workload(every)),
        player_sim.Segment(causal, player_sim.expected_results(cfg, causal),
                           playback.Workload(every, batches=2)),
        player_sim.Segment(straight, expected_straight, playback.Workload(
            every, modes=stalled_modes, batches=3, idle=0.3, backpressure=0.5, seed=seeds[2])),
    ]
    return player_sim.launch(cfg, top, sim, segments)
