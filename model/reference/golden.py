"""The bit-exact golden model of one attention-head engine, vectorized over a batch of problems.

For every visible (query, key) pair it gives the exact score, the kept/pruned decision, and the number
of bit planes the MSB-first early-termination bound needs (BRIEF §1); for every query the fixed-point
softmax probabilities of its kept keys and its fixed-point output vector (``docs/arithmetic.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from leopard.hw import fixedpoint
from leopard.hw.config import EngineConfig
from leopard.hw.resources import check_memory


@dataclass(frozen=True)
class Attention:
    """Self-attention problems in the engine's integer domain: ``q``, ``k``, ``v``: ``[P, N, D]``;
    ``valid_len``: ``[P]``; ``threshold``: ``[P]`` (score domain); ``causal`` for all of them."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    valid_len: np.ndarray
    causal: bool
    threshold: np.ndarray

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
class Problems(Attention):
    """Problems ready for the golden model or the RTL: ``scale_mantissa``/``scale_shift``: ``[P]``, the
    softmax scale registers."""

    scale_mantissa: np.ndarray
    scale_shift: np.ndarray

    def take(self, pick: np.ndarray, length: int | None = None) -> Problems:
        """The problems ``pick`` (indices or a slice), their token arrays cut to ``length`` tokens."""
        tokens = slice(None, length)
        return dataclasses.replace(
            self, q=self.q[pick, tokens], k=self.k[pick, tokens], v=self.v[pick, tokens],
            valid_len=self.valid_len[pick], threshold=self.threshold[pick],
            scale_mantissa=self.scale_mantissa[pick], scale_shift=self.scale_shift[pick],
        )


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


def _exact_dtype(cfg: EngineConfig) -> type[np.floating]:
    """float32 when every ``q·(k >> r)`` is below 2**24 (exact in float32), float64 otherwise."""
    largest = cfg.head_dim << (cfg.q_bits + cfg.k_bits - 2)
    return np.float32 if largest < 1 << 24 else np.float64


def planes_needed(
    cfg: EngineConfig, q: np.ndarray, k: np.ndarray, threshold: np.ndarray
) -> np.ndarray:
    """``[P, N, N]`` lane cycles the exact bound needs per key: see ``bound``."""
    return bound(cfg, q, k, threshold)[0]


def bound(
    cfg: EngineConfig, q: np.ndarray, k: np.ndarray, threshold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``[P, N, N]`` lane cycles the exact bound needs per key (``docs/arithmetic.md`` §2).

    The bound ``UB_r = acc_r·2**r + (2**r − 1)·P`` with ``acc_r = Σ q_i·(k_i >> r)`` is tested when
    ``r`` planes remain after a step; the key is pruned at the first step whose test holds, kept after
    its last step. Without ``skip_zero_planes`` every plane is a step (``B − r*`` cycles, ``B`` when
    kept); with it, only the key's ``step_ends`` are (``k_bits`` at most, fewer when planes are skipped).
    ``UB_r < θ`` is tested as ``acc_r < ⌈(θ − (2**r − 1)·P) / 2**r⌉``, a limit per query and ``r``
    (products exact in ``_exact_dtype``; limits clamped to the range ``acc_r`` can reach). Also gives
    which keys were pruned: the last step tests ``acc_0``, the score itself, so a key is pruned exactly
    when its score is below ``θ``.
    """
    B = cfg.k_bits
    k = k.astype(np.int64)
    dtype = _exact_dtype(cfg)
    reach = float(cfg.head_dim << (cfg.q_bits + cfg.k_bits - 2)) + 1
    pos = positive_sum(q)[:, :, None]
    theta = threshold.astype(np.int64)[:, None, None]
    q_float = q.astype(dtype)
    ends = step_ends(cfg, k)[:, None, :, :]
    steps = np.zeros((*q.shape[:2], k.shape[1]), np.int64)
    cycles = np.zeros_like(steps)
    decided = np.zeros(steps.shape, bool)
    for r in reversed(range(B)):
        check = ends[..., r]
        steps += check
        limit = np.clip(-((((1 << r) - 1) * pos - theta) >> r), -reach, reach).astype(dtype)
        acc = np.matmul(q_float, np.swapaxes(k >> r, -1, -2).astype(dtype))
        prune = check & ~decided & (acc < limit)
        cycles = np.where(prune, steps, cycles)
        decided |= prune
    return np.where(decided, cycles, steps), decided


def step_ends(cfg: EngineConfig, k: np.ndarray) -> np.ndarray:
    """``[P, N, B]``: whether a lane step of key ``k`` ends with ``r`` planes remaining (index ``r``).

    Without ``skip_zero_planes``, every ``r``. With it, plane ``t`` (``t = 0`` the sign plane) is
    processed when it is not a leading sign-extension plane (``t ≥ s``, ``s = k_bits −`` the key's
    narrowest two's complement width) and not all zero; a step processes one such plane and the zero
    planes after it, so steps end at ``r = B − t'`` for each processed plane ``t'`` but the first,
    and at ``r = 0``. A key with no processed plane takes one step.
    """
    B = cfg.k_bits
    ends = np.ones((*k.shape[:2], B), bool)
    if not (cfg.skip_zero_planes and cfg.early_termination):
        return ends
    k = k.astype(np.int64)
    planes = np.stack([((k >> (B - 1 - t)) & 1) for t in range(B)], axis=-1)
    nonzero = planes.any(axis=-2)
    same = np.all(planes[..., :, 1:] == planes[..., :, :-1], axis=-2)
    extension = np.cumprod(same, axis=-1).sum(axis=-1)
    processed = nonzero & (np.arange(B) >= extension[..., None])
    first = np.where(processed.any(axis=-1), np.argmax(processed, axis=-1), B)
    later = processed & (np.arange(B) > first[..., None])
    ends[..., 1:] = later[..., :0:-1]
    return ends


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

REPORT_BYTES_PER_PAIR = 200
"""Working memory of the golden model per query–key pair: the decisions, planes and cycles of a block of
``leopard golden`` (both modes) stay below it, and so does ``leopard report``'s whole run of the golden
model with softmax (measured: 188 bytes on 2,048 problems of 64 tokens)."""


def check_report_memory(attention: Attention, remedy: str = "split the trace into smaller files") -> None:
    """Refuse, before any work, a trace whose golden report would not fit in memory."""
    check_memory(REPORT_BYTES_PER_PAIR * attention.count * attention.length ** 2,
                 f"the golden model on {attention.count} problems of {attention.length} tokens", remedy)


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


def decisions(
    cfg: EngineConfig, problems: Problems, visible: np.ndarray, *, dense: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, planes)`` of ``evaluate`` alone, without scores and softmax (what the cycle model
    needs)."""
    if dense or not cfg.early_termination:
        return visible, np.where(visible, cfg.k_bits, 0)
    planes, pruned = bound(cfg, problems.q, problems.k, problems.threshold)
    return visible & ~pruned, np.where(visible, planes, 0)
