"""What the engine computes inside the float encoder: symmetric integer ``q``, ``k``, ``v`` per
(layer, head), exact integer scores, the integer threshold decision ``s_int ≥ θ_int``, and the
fixed-point softmax and output of ``model/golden.py``, dequantized back to float.

Quantization: ``x_int = clip(round(x / s_x), −(2^(b−1) − 1), 2^(b−1) − 1)`` with one scale per
(layer, head) and tensor, ``s_x = max|x| / (2^(b−1) − 1)`` over the calibration sentences' valid tokens.
Then ``s = q·k/√Dh ≈ s_int·scale`` with ``scale = s_q·s_k/√Dh``, and ``θ_int = ⌈θ / scale⌉``, so
``s_int ≥ θ_int ⇔ s_int·scale ≥ θ``: the hardware decision is the trained one, applied to the
quantized score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model import fixedpoint, golden
from leopard.model.bert import Classifier, dense_core
from leopard.model.pruned_attention import PruningStats, scaled_scores


@dataclass(frozen=True)
class Quantization:
    """Per-(layer, head) scales ``[layers, heads]`` of ``q``, ``k``, ``v`` (float64)."""

    scale_q: np.ndarray
    scale_k: np.ndarray
    scale_v: np.ndarray
    head_dim: int

    def score_scale(self) -> np.ndarray:
        """``scale = s_q·s_k/√Dh`` per (layer, head)."""
        return self.scale_q * self.scale_k / math.sqrt(self.head_dim)


def largest(bits: int) -> int:
    """The symmetric range's bound ``2^(bits−1) − 1``."""
    return (1 << (bits - 1)) - 1


def quantize(x: torch.Tensor, scale: torch.Tensor, bits: int) -> np.ndarray:
    """``clip(round(x / scale))`` as int64; ``scale`` broadcasts against ``x``."""
    top = largest(bits)
    values = torch.clamp(torch.round(x.double() / scale), -top, top)
    return values.numpy().astype(np.int64)


def calibrate(
    model: Classifier, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], cfg: EngineConfig
) -> Quantization:
    """Scales from the largest ``|q|``, ``|k|``, ``|v|`` of each (layer, head) over the valid tokens of
    the dense float model."""
    bert = model.bert.config
    peaks = np.zeros((3, bert.num_hidden_layers, bert.num_attention_heads))

    def core(
        layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        tokens = valid[:, None, :, None]
        for slot, x in enumerate((q, k, v)):
            peak = (x.abs() * tokens).amax(dim=(0, 2, 3)).double().numpy()
            peaks[slot, layer] = np.maximum(peaks[slot, layer], peak)
        return dense_core(layer, q, k, v, valid)

    with torch.no_grad():
        for ids, valid in batches:
            model(ids, valid, core)
    if not (peaks > 0).all():
        raise LeopardError("calibration saw an all-zero q, k or v head; use more calibration sentences")
    bits = (cfg.q_bits, cfg.k_bits, cfg.v_bits)
    scales = [peaks[slot] / largest(bits[slot]) for slot in range(3)]
    return Quantization(*scales, head_dim=bert.head_dim)


def threshold_int(theta: np.ndarray, scale: np.ndarray, cfg: EngineConfig) -> np.ndarray:
    """``θ_int = ⌈θ / scale⌉`` clipped to the threshold register's range (int64)."""
    values = np.ceil(np.asarray(theta, np.float64) / scale)
    return np.clip(values, cfg.threshold_min, cfg.threshold_max).astype(np.int64)


@dataclass(frozen=True)
class Captured:
    """One layer's integer problems ``[B, H, N, Dh]`` as the engine sees them, with token counts ``[B]``."""

    layer: int
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    valid_len: np.ndarray
    out: np.ndarray


@dataclass
class HardwareCore:
    """The engine as the attention core of the float encoder (``prune=False``: dense mode).

    ``stats`` counts the integer decisions; ``flips`` ``[layers, heads]`` counts visible pairs where the
    float score ``q·k/√Dh`` and the quantized one fall on opposite sides of ``θ``; ``queries`` counts
    (query, layer, head) rows and ``empty_queries`` those whose keys are all pruned (zero output when
    pruning); ``captured`` (when ``capture``) keeps every layer's integer problems and outputs.
    """

    cfg: EngineConfig
    quant: Quantization
    theta: np.ndarray
    threshold: np.ndarray
    prune: bool = True
    capture: bool = False
    stats: PruningStats = field(init=False)
    flips: np.ndarray = field(init=False)
    captured: list[Captured] = field(init=False, default_factory=list)
    queries: int = field(init=False, default=0)
    empty_queries: int = field(init=False, default=0)
    mantissa: np.ndarray = field(init=False)
    """``[layers, heads]`` scale registers (``fixedpoint.encode_scale`` of ``scale``): mantissas …"""
    shift: np.ndarray = field(init=False)
    """… and shifts."""

    def __post_init__(self) -> None:
        self.stats = PruningStats.zeros(*self.theta.shape)
        self.flips = np.zeros(self.theta.shape, np.int64)
        score_scale = self.quant.score_scale()
        registers = [[fixedpoint.encode_scale(self.cfg, float(s)) for s in row] for row in score_scale]
        self.mantissa = np.array([[r.mantissa for r in row] for row in registers], np.int64)
        self.shift = np.array([[r.shift for r in row] for row in registers], np.int64)

    def __call__(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        cfg, quant = self.cfg, self.quant
        batch, heads, length, dim = q.shape

        def per_head(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(values[layer])[None, :, None, None]

        q_int = quantize(q, per_head(quant.scale_q), cfg.q_bits)
        k_int = quantize(k, per_head(quant.scale_k), cfg.k_bits)
        v_int = quantize(v, per_head(quant.scale_v), cfg.v_bits)
        valid_len = valid.sum(dim=1).numpy().astype(np.int64)
        problems = golden.Problems(
            q=q_int.reshape(-1, length, dim), k=k_int.reshape(-1, length, dim),
            v=v_int.reshape(-1, length, dim), valid_len=np.repeat(valid_len, heads), causal=False,
            threshold=np.tile(self.threshold[layer], batch),
            scale_mantissa=np.tile(self.mantissa[layer], batch),
            scale_shift=np.tile(self.shift[layer], batch),
        )
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        decided = visible & (score >= problems.threshold[:, None, None])
        kept = decided if self.prune else visible
        _, out = golden.softmax(cfg, problems, score, kept)
        self._count(layer, q, k, visible.reshape(batch, heads, length, length),
                    decided.reshape(batch, heads, length, length))
        out = out.reshape(batch, heads, length, dim)
        if self.capture:
            self.captured.append(Captured(layer, q_int, k_int, v_int, valid_len, out))
        units = out * 2.0 ** -cfg.out_frac_bits * quant.scale_v[layer][None, :, None, None]
        return torch.from_numpy(units).to(q.dtype)

    def _count(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, visible: np.ndarray, decided: np.ndarray
    ) -> None:
        """Add the integer decisions to ``stats`` and the float/integer disagreements to ``flips``."""
        self.stats.add(layer, torch.from_numpy(visible), torch.from_numpy(decided))
        rows = visible.any(axis=-1)
        self.queries += int(rows.sum())
        self.empty_queries += int((rows & ~decided.any(axis=-1)).sum())
        float_kept = scaled_scores(q, k).double().numpy() >= self.theta[layer][None, :, None, None]
        self.flips[layer] += (visible & (float_kept != decided)).sum(axis=(0, 2, 3))
