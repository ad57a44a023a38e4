"""Synthetic attention traces for tests and benchmarks, with a threshold per problem chosen to prune
about a requested fraction of the visible scores."""

from __future__ import annotations

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.resources import check_memory
from leopard.model.reference import golden
from leopard.model.reference.trace import Trace


def _gaussian_ints(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Rounded normal samples with σ a third of the range, clipped to ``bits``-bit two's complement."""
    top = (1 << (bits - 1)) - 1
    values = np.rint(rng.normal(0.0, (top + 1) / 3.0, shape))
    return np.clip(values, -top - 1, top).astype(np.int32)

BYTES_PER_PAIR = 40
"""Peak memory of ``random_trace`` per query–key pair (measured: 28 bytes on 2,048 problems of 64
tokens), beside its three ``[P, N, D]`` arrays."""


def random_trace(
    cfg: EngineConfig,
    *,
    seed: int,
    problems: int = 4,
    length: int | None = None,
    prune_fraction: float = 0.8,
    causal: bool = False,
) -> Trace:
    """``problems`` random problems of ``length`` tokens (default ``max_seq_len``).

    Each problem's threshold is the ``prune_fraction`` quantile of its visible scores (so about that
    fraction is pruned), and its scale maps the scores' standard deviation to a logit spread of 2.
    """
    length = cfg.max_seq_len if length is None else length
    if not 1 <= length <= cfg.max_seq_len:
        raise LeopardError(f"--length must be in [1, {cfg.max_seq_len}] (max_seq_len), got {length}")
    if problems < 1:
        raise LeopardError(f"--problems must be at least 1, got {problems}")
    if not 0.0 <= prune_fraction < 1.0:
        raise LeopardError(f"--prune-fraction must be in [0, 1), got {prune_fraction}")
    check_memory(BYTES_PER_PAIR * problems * length ** 2 + 24 * problems * length * cfg.head_dim,
                 f"a random trace of {problems} problems of {length} tokens", "ask for fewer --problems")
    rng = np.random.default_rng(seed)
    shape = (problems, length, cfg.head_dim)
    q = _gaussian_ints(rng, shape, cfg.q_bits)
    k = _gaussian_ints(rng, shape, cfg.k_bits)
    v = _gaussian_ints(rng, shape, cfg.v_bits)
    valid_len = np.full(problems, length, np.int32)
    batch = golden.Problems(
        q=q, k=k, v=v, valid_len=valid_len, causal=causal,
        threshold=np.zeros(problems, np.int64),
        scale_mantissa=np.zeros(problems, np.int64), scale_shift=np.zeros(problems, np.int64),
    )
    visible = batch.visible()
    score = golden.scores(q, k)
    threshold = np.empty(problems, np.int64)
    scale = np.empty(problems, np.float64)
    for p in range(problems):
        values = score[p][visible[p]]
        cut = np.quantile(values, prune_fraction, method="inverted_cdf") if prune_fraction else None
        threshold[p] = cfg.threshold_min if cut is None else int(cut)
        spread = float(values.std())
        scale[p] = 2.0 / spread if spread > 0 else 1.0 / (1 << (cfg.q_bits + cfg.k_bits))
    return Trace(
        config=cfg, q=q, k=k, v=v, valid_len=valid_len, causal=causal, threshold=threshold,
        scale=scale, source=f"random seed={seed} prune_fraction={prune_fraction}",
    )
