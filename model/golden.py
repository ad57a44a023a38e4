"""The bit-exact golden model of one attention-head engine, vectorized over a batch of problems.

For every visible (query, key) pair it gives the exact score, the kept/pruned decision, and the number
of bit planes the MSB-first early-termination bound needs (BRIEF §1); for every query the fixed-point
softmax probabilities of its kept keys and its fixed-point output vector (``docs/arithmetic.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model import fixedpoint


@dataclass(frozen=True)
class Problems:
    """A batch of self-attention problems in the engine's integer domain.

    ``q``, ``k``, ``v``: ``[P, N, D]``; ``valid_len``: ``[P]``; ``threshold``: ``[P]`` (score domain);
    ``scale_mantissa``/``scale_shift``: ``[P]``, the softmax scale registers.
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    valid_len: np.ndarray
    causal: bool
    threshold: np.ndarray
    scale_mantissa: np.ndarray
    scale_shift: np.ndarray

    @property
    def count(self) -> int:
        return self.q.shape[0]

    @property
    def length(self) -> int:
        return self.q.shape[1]

    def visible(self) -> np.ndarray:
        """``[P, N, N]``: query ``i`` sees key ``j`` (both valid, and ``j ≤ i`` when causal)."""
        idx = np.arange(self.length)
        inside = idx[None, :] < self.valid_len[:, None]
        mask = inside[:, :, None] & inside[:, None, :]
        if self.causal:
            mask &= idx[None, None, :] <= idx[None, :, None]
        return mask

    def query_valid(self) -> np.ndarray:
        """``[P, N]``: rows that are real queries."""
        return np.arange(self.length)[None, :] < self.valid_len[:, None]


@dataclass(frozen=True)
class GoldenResult:
    """Per-pair and per-query results; entries outside ``visible`` are 0 / False."""

    visible: np.ndarray
    """``[P, N, N]`` bool."""
    scores: np.ndarray
    """``[P, N, N]`` exact integer scores."""
    kept: np.ndarray
    """``[P, N, N]`` bool: reaches softmax and ``p·v``."""
    planes: np.ndarray
    """``[P, N, N]`` bit planes processed before the key was decided."""
    probs: np.ndarray
    """``[P, N, N]`` probabilities of kept keys, ``prob_frac_bits`` fraction bits."""
    out: np.ndarray
    """``[P, N, D]`` output vectors, ``v`` units with ``out_frac_bits`` fraction bits."""


def scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``[P, N, N]`` exact ``q·k`` (float64 products are exact: every score is below 2**53)."""
    return np.rint(np.matmul(q.astype(np.float64), np.swapaxes(k, -1, -2).astype(np.float64))).astype(
        np.int64
    )


def positive_sum(q: np.ndarray) -> np.ndarray:
    """``P = Σ_i max(q_i, 0)`` per query: the bound's weight on the unseen low key bits."""
    return np.maximum(q.astype(np.int64), 0).sum(axis=-1)


def planes_needed(
    cfg: EngineConfig, q: np.ndarray, k: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
    """``[P, N, N]`` planes the exact bound needs: ``B − r*`` with ``r* = max{r : UB_r < θ}``, else ``B``.

    ``UB_r = acc_r·2**r + (2**r − 1)·P`` with ``acc_r = Σ q_i·(k_i >> r)`` after planes ``B−1 … r``.
    """
    B = cfg.k_bits
    k = k.astype(np.int64)
    pos = positive_sum(q)[:, :, None]
    theta = threshold.astype(np.int64)[:, None, None]
    planes = np.full((*q.shape[:2], k.shape[1]), B, np.int64)
    for r in range(B):
        acc = scores(q, k >> r)
        bound = acc * (1 << r) + ((1 << r) - 1) * pos
        planes = np.where(bound < theta, B - r, planes)
    return planes


def softmax(
    cfg: EngineConfig, problems: Problems, score: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point probabilities ``[P, N, N]`` and outputs ``[P, N, D]`` over the kept keys.

    A query with no kept key gets zero probabilities and the zero output vector.
    """
    lowest = np.iinfo(np.int64).min
    has_key = kept.any(axis=-1)
    top = np.where(has_key, np.where(kept, score, lowest).max(axis=-1), 0)[..., None]
    distance = np.where(kept, top - score, 0)
    mantissa = problems.scale_mantissa.astype(np.int64)[:, None, None]
    shift = problems.scale_shift.astype(np.int64)[:, None, None]
    e = np.where(kept, fixedpoint.exponents(cfg, distance, mantissa, shift), 0)
    total = np.where(has_key, e.sum(axis=-1), 1 << cfg.exp_frac_bits)
    recip, k = fixedpoint.normalize_sum(cfg, total)
    recip, k = recip[..., None], k[..., None]
    probs = fixedpoint.round_shift(e * recip, cfg.recip_bits + k - cfg.prob_frac_bits)
    weighted = np.einsum("pqk,pkd->pqd", e, problems.v.astype(np.int64))
    out = fixedpoint.round_shift(weighted * recip, cfg.recip_bits + k - cfg.out_frac_bits)
    return np.where(kept, probs, 0), np.where(has_key[..., None], out, 0)


def run(cfg: EngineConfig, problems: Problems, *, dense: bool = False) -> GoldenResult:
    """The engine's results for every problem; ``dense`` turns early termination and pruning off."""
    return evaluate(cfg, problems, problems.visible(), dense=dense)


def evaluate(
    cfg: EngineConfig, problems: Problems, visible: np.ndarray, *, dense: bool = False
) -> GoldenResult:
    """As ``run``, for an explicit ``[P, Q, K]`` visibility (queries of ``q`` against keys of ``k``)."""
    score = np.where(visible, scores(problems.q, problems.k), 0)
    if dense or not cfg.early_termination:
        kept = visible
        planes = np.where(visible, cfg.k_bits, 0)
    else:
        kept = visible & (score >= problems.threshold.astype(np.int64)[:, None, None])
        planes = np.where(visible, planes_needed(cfg, problems.q, problems.k, problems.threshold), 0)
    probs, out = softmax(cfg, problems, score, kept)
    return GoldenResult(visible, score, kept, planes, probs, out)
