"""Attention with one learned threshold per (layer, head) on the scaled score ``s = q·k/√Dh``.

Soft phase: keep-mask ``m = sigmoid((s − θ)/T)`` and probabilities ``p_j = m_j·e_j / (Σ_k m_k·e_k + ε)``
with ``e_j = exp(s_j − max s)`` over the valid keys: a pruned key's probability mass goes to the keys
that survive, as in the hard case, and a query whose keys are all pruned tends to the zero output.
Hard phase: ``m = [s ≥ θ]`` exactly, ``p`` renormalized over the kept keys, zero output when none is
kept. Both record the statistics the regularizer ``λ·mean(m)`` and the reports need, and, with a
``PlaneCost``, the mean of a differentiable proxy of the bit planes the engine's bound needs.

The bound (``docs/arithmetic.md`` §2) stops a key once ``UB_r = s + slack_r < θ`` with ``r`` planes
remaining; the expected slack, if the ``r`` low bits of each key element are uniform, is
``(2^r − 1)·G`` with ``G = ½·Σ_d |q_d|·u_d`` and ``u_d = s_k·c_d/√Dh`` the key step of channel ``d`` in
score units. So a key needs ``1 + #{r ≥ 1 : s + (2^r − 1)·G ≥ θ}`` planes (``B`` when kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from leopard.model.training.bert import key_mask

SOFT_EPSILON = 1e-6
"""``ε`` of the soft probabilities: negligible once a key survives (the largest weighs 1)."""
PLANE_PROXIES = ("log", "sigmoid")
SLACK_FLOOR = 1e-6
"""Smallest ``G`` of the planes proxy (an all-zero query would divide by zero)."""


class Thresholds(nn.Module):
    """``θ``: one learnable threshold per (layer, head), in units of ``q·k/√Dh``."""

    def __init__(self, layers: int, heads: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(layers, heads))


def scaled_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, N]``: ``q·k/√Dh``."""
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


def visible_pairs(valid: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """``[B, 1, N, N]``: both the query and the key are real tokens (and, with ``causal``, the key is
    not after the query)."""
    return valid[:, None, :, None] & key_mask(valid, causal)


def soft_keep(scores: torch.Tensor, theta: torch.Tensor, temperature: float) -> torch.Tensor:
    """``sigmoid((s − θ)/T)`` with ``θ`` ``[H]`` broadcast over ``[B, H, N, N]`` scores."""
    return torch.sigmoid((scores - theta[None, :, None, None]) / temperature)


def hard_keep(scores: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``s ≥ θ`` (1.0 kept, 0.0 pruned); no gradient reaches ``θ``."""
    return (scores >= theta.detach()[None, :, None, None]).to(scores.dtype)


def masked_probabilities(
    scores: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor, *, hard: bool, causal: bool = False
) -> torch.Tensor:
    """``p_j = m_j·e_j / Σ_k m_k·e_k`` over the valid keys (with ``causal``, those not after the query;
    ``+ ε`` when soft; 0 for an all-pruned query)."""
    key_valid = key_mask(valid, causal)
    top = scores.masked_fill(~key_valid, float("-inf")).amax(dim=-1, keepdim=True)
    weights = torch.exp(scores - top).masked_fill(~key_valid, 0.0) * keep
    total = weights.sum(dim=-1, keepdim=True)
    if hard:
        return weights / torch.where(total > 0, total, torch.ones_like(total))
    return weights / (total + SOFT_EPSILON)


@dataclass(frozen=True)
class PlaneCost:
    """What the planes proxy needs: key steps in score units ``[layers, heads, Dh]`` (``u_d``), the key
    width ``bits`` and the proxy's kind (``PLANE_PROXIES``)."""

    key_unit: torch.Tensor
    bits: int
    proxy: str


def plane_slack(q: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, 1]``: ``G = ½·Σ_d |q_d|·u_d`` per query, ``unit`` ``[H, Dh]``."""
    return 0.5 * (q.abs() * unit[None, :, None, :]).sum(dim=-1, keepdim=True).clamp_min(SLACK_FLOOR)


def plane_proxy(
    scores: torch.Tensor, theta: torch.Tensor, slack: torch.Tensor, cost: PlaneCost, temperature: float
) -> torch.Tensor:
    """``[B, H, N, N]`` differentiable planes per pair (``θ`` ``[H]`` gets no gradient from it).

    ``log``: ``B − min(log2(1 + max(θ − s, 0)/G), B − 1)``, the continuous count (up to a constant
    under one plane) of the planes the expected bound needs: ``B`` for ``s ≥ θ``, falling as a pruned
    score moves below ``θ`` in units of ``G``, with a gradient for every pruned pair not yet at one
    plane. ``sigmoid``: ``1 + Σ_{r=1}^{B−1} sigmoid((s + (2^r − 1)·G − θ)/T)``, the step count softened
    at temperature ``T``.
    """
    limit = theta.detach()[None, :, None, None]
    if cost.proxy == "log":
        saved = torch.log2(1.0 + torch.relu(limit - scores) / slack)
        return cost.bits - torch.clamp(saved, max=cost.bits - 1)
    steps = [torch.sigmoid((scores + ((1 << r) - 1) * slack - limit) / temperature)
             for r in range(1, cost.bits)]
    return 1.0 + torch.stack(steps).sum(dim=0)


@dataclass
class PruningStats:
    """Counts over visible (query, key) pairs, per (layer, head), accumulated over batches."""

    pairs: np.ndarray
    kept: np.ndarray

    @classmethod
    def zeros(cls, layers: int, heads: int) -> PruningStats:
        return cls(np.zeros((layers, heads), np.int64), np.zeros((layers, heads), np.int64))

    def add(self, layer: int, visible: torch.Tensor, kept: torch.Tensor) -> None:
        """Add one layer's ``[B, H, N, N]`` visible and kept masks."""
        pairs = visible.expand_as(kept)
        self.pairs[layer] += pairs.sum(dim=(0, 2, 3)).numpy()
        self.kept[layer] += (kept & pairs).sum(dim=(0, 2, 3)).numpy()

    def pruned_fraction(self) -> float:
        return 1.0 - float(self.kept.sum()) / max(int(self.pairs.sum()), 1)

    def pruned_per_head(self) -> np.ndarray:
        """``[layers, heads]`` fraction of each head's visible pairs that were pruned."""
        return 1.0 - self.kept / np.maximum(self.pairs, 1)


@dataclass
class PrunedCore:
    """The attention core of ``bert.Bert`` with thresholds: ``soft`` at ``temperature``, else hard.

    After a forward pass, ``mask_mean()`` is the mean keep-mask over every visible pair of every layer
    and head (the regularized quantity, differentiable when soft), ``plane_mean()`` (with ``planes``)
    the mean planes proxy, and ``stats`` counts hard decisions.
    """

    thresholds: Thresholds
    soft: bool
    temperature: float = 1.0
    planes: PlaneCost | None = None
    stats: PruningStats = field(init=False)
    _mask_sum: torch.Tensor | float = field(init=False, default=0.0)
    _plane_sum: torch.Tensor | float = field(init=False, default=0.0)
    _pair_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.stats = PruningStats.zeros(*self.thresholds.theta.shape)

    def __call__(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
        causal: bool = False,
    ) -> torch.Tensor:
        scores = scaled_scores(q, k)
        theta = self.thresholds.theta[layer]
        keep = soft_keep(scores, theta, self.temperature) if self.soft else hard_keep(scores, theta)
        visible = visible_pairs(valid, causal)
        self._mask_sum = self._mask_sum + (keep * visible).sum()
        if self.planes is not None:
            slack = plane_slack(q, self.planes.key_unit[layer])
            proxy = plane_proxy(scores, theta, slack, self.planes, self.temperature)
            self._plane_sum = self._plane_sum + torch.where(visible, proxy, 0.0).sum()
        self._pair_count += int(visible.sum()) * q.shape[1]
        self.stats.add(layer, visible, (scores >= theta[None, :, None, None]).detach())
        return masked_probabilities(scores, keep, valid, hard=not self.soft, causal=causal) @ v

    def mask_mean(self) -> torch.Tensor:
        """Mean keep-mask over the visible pairs of every layer and head seen since construction."""
        return torch.as_tensor(self._mask_sum) / max(self._pair_count, 1)

    def plane_mean(self) -> torch.Tensor:
        """Mean planes proxy over the visible pairs of every layer and head seen since construction."""
        return torch.as_tensor(self._plane_sum) / max(self._pair_count, 1)
