"""What the engine computes inside the float encoder: symmetric integer ``q``, ``k``, ``v`` per
(layer, head), exact integer scores, the integer threshold decision ``s_int ≥ θ_int``, and the
fixed-point softmax and output of ``model/reference/golden.py``, dequantized back to float.

Quantization: ``x_int = clip(round(x / s_x), −(2^(b−1) − 1), 2^(b−1) − 1)`` with one scale per
(layer, head) and tensor, calibrated on the calibration sentences' valid tokens:
``s_x = clip_x / (2^(b−1) − 1)`` with ``clip_x`` the largest ``|x|`` (percentile 100, the default) or a
lower percentile of ``|x|`` (outlier-aware quantization: values beyond saturate): ``clip_percentile`` for
``k``, ``clip_q_percentile`` for ``q``; ``v`` always uses its largest value.

Finer key scaling (``key_block`` channels per block, a divisor of ``Dh``): block ``g`` of each head's key
channels gets its own step ``s_k·c_g`` (``c_g = m_g / max m`` ≤ 1, ``m_g`` the clip value of the block's
``|k|``), and the query is multiplied by ``c`` before it is quantized, so
``Σ_d q_d·k_d = Σ_d (q_d·c_d)·(k_d/c_d) ≈ s_q·s_k·Σ_d q_int,d·k_int,d``: the engine still computes one
plain integer dot product with one scale per head. ``key_block`` = ``Dh`` (or 0) is the per-head scale.

Then ``s = q·k/√Dh ≈ s_int·scale`` with ``scale = s_q·s_k/√Dh``, and ``θ_int = ⌈θ / scale⌉``, so
``s_int ≥ θ_int ⇔ s_int·scale ≥ θ``: the hardware decision is the trained one, applied to the
quantized score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from leopard.hw import fixedpoint
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model.reference import golden
from leopard.model.training.bert import Classifier, dense_core
from leopard.model.training.pruned_attention import PruningStats, scaled_scores


@dataclass(frozen=True)
class QuantSettings:
    """How ``q`` and ``k`` become integers (``v``: always its largest value, one scale per head)."""

    clip_percentile: float = 100.0
    """``k`` saturates at this percentile of its ``|k|`` per (layer, head) or key block; 100: no clipping."""
    key_block: int = 0
    """Key channels sharing one scale (a divisor of ``Dh``); 0 or ``Dh``: one key scale per head."""
    clip_q_percentile: float = 100.0
    """``q`` saturates at this percentile of its ``|q|`` (after the key blocks' factors); 100: no clipping."""

    def check(self, head_dim: int) -> None:
        """One-line errors for settings that cannot quantize a head of ``head_dim`` channels."""
        for option, value in (("--clip-percentile", self.clip_percentile),
                              ("--clip-q-percentile", self.clip_q_percentile)):
            if not 50.0 <= value <= 100.0:
                raise LeopardError(f"{option} must be in [50, 100], got {value}")
        if self.key_block < 0 or (self.key_block and head_dim % self.key_block):
            raise LeopardError(
                f"--key-block must be 0 or a divisor of the head dim {head_dim}, got {self.key_block}"
            )

    def block(self, head_dim: int) -> int:
        """Channels per key-scale block."""
        return self.key_block or head_dim


@dataclass(frozen=True)
class Quantization:
    """Per-(layer, head) scales ``[layers, heads]`` of ``q``, ``k``, ``v`` (float64) and the relative
    key-channel scales ``key_channel`` ``[layers, heads, Dh]`` (``c_d`` in ``(0, 1]``, all 1 without finer
    key scaling): ``k_d ≈ s_k·c_d·k_int,d`` and ``q_d·c_d ≈ s_q·q_int,d``."""

    scale_q: np.ndarray
    scale_k: np.ndarray
    scale_v: np.ndarray
    key_channel: np.ndarray
    head_dim: int

    def score_scale(self) -> np.ndarray:
        """``scale = s_q·s_k/√Dh`` per (layer, head)."""
        return self.scale_q * self.scale_k / math.sqrt(self.head_dim)

    def query_step(self, layer: int) -> np.ndarray:
        """``[heads, Dh]``: ``q_int,d = round(q_d / (s_q / c_d))``."""
        return self.scale_q[layer][:, None] / self.key_channel[layer]

    def key_step(self, layer: int) -> np.ndarray:
        """``[heads, Dh]``: ``k_int,d = round(k_d / (s_k·c_d))``."""
        return self.scale_k[layer][:, None] * self.key_channel[layer]


def largest(bits: int) -> int:
    """The symmetric range's bound ``2^(bits−1) − 1``."""
    return (1 << (bits - 1)) - 1


def quantize(x: torch.Tensor, scale: torch.Tensor, bits: int) -> np.ndarray:
    """``clip(round(x / scale))`` as int64; ``scale`` broadcasts against ``x``."""
    top = largest(bits)
    values = torch.clamp(torch.round(x.double() / scale), -top, top)
    return values.numpy().astype(np.int64)


def clip_value(values: np.ndarray, percentile: float, axis: int | None = None) -> np.ndarray:
    """The largest ``|x|`` (``percentile`` 100) or the ``percentile`` percentile of ``|x|``."""
    magnitudes = np.abs(values)
    if percentile == 100.0:
        return magnitudes.max(axis=axis).astype(np.float64)
    return np.percentile(magnitudes.astype(np.float64), percentile, axis=axis)


def calibrate(
    model: Classifier, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], cfg: EngineConfig,
    settings: QuantSettings = QuantSettings(),
) -> Quantization:
    """Scales from the valid tokens of the dense float model (see the module docstring)."""
    settings.check(model.bert.config.head_dim)

    def run(core: Callable[..., torch.Tensor]) -> None:
        for ids, valid in batches:
            model(ids, valid, core)

    return calibrate_with(run, cfg, settings)


def calibrate_with(
    run: Callable[[Callable[..., torch.Tensor]], None], cfg: EngineConfig,
    settings: QuantSettings = QuantSettings(),
) -> Quantization:
    """``calibrate`` for any model: ``run(core)`` runs the calibration inputs through the dense float
    model with ``core`` as its attention core (``core(layer, q, k, v, valid, causal=False)``)."""
    peaks_v: dict[int, np.ndarray] = {}
    tokens: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def core(
        layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
        causal: bool = False,
    ) -> torch.Tensor:
        peak = (v.abs() * valid[:, None, :, None]).amax(dim=(0, 2, 3)).double().numpy()
        peaks_v[layer] = np.maximum(peaks_v.get(layer, 0.0), peak)
        rows = valid.numpy()
        tokens.setdefault(layer, []).append(tuple(x.transpose(1, 2).numpy()[rows] for x in (q, k)))
        return dense_core(layer, q, k, v, valid, causal)

    with torch.no_grad():
        run(core)
    if not tokens:
        raise LeopardError("calibration ran no attention layer")
    layers = len(tokens)
    _, heads, dim = tokens[0][0][0].shape
    settings.check(dim)
    block = settings.block(dim)
    scale_q, scale_k = np.zeros((layers, heads)), np.zeros((layers, heads))
    channel = np.ones((layers, heads, dim))
    for layer in range(layers):
        q = np.concatenate([pair[0] for pair in tokens[layer]])
        k = np.concatenate([pair[1] for pair in tokens[layer]])
        for head in range(heads):
            blocks = k[:, head].reshape(len(k), dim // block, block).transpose(1, 0, 2)
            clip_k = clip_value(blocks.reshape(dim // block, -1), settings.clip_percentile, axis=1)
            if clip_k.max() > 0:
                channel[layer, head] = np.repeat(clip_k / clip_k.max(), block)
            scale_k[layer, head] = clip_k.max()
            scale_q[layer, head] = clip_value(q[:, head] * channel[layer, head], settings.clip_q_percentile)
    peak_v = np.stack([peaks_v[layer] for layer in range(layers)])
    if not ((scale_q > 0).all() and (scale_k > 0).all() and (peak_v > 0).all() and (channel > 0).all()):
        raise LeopardError("calibration saw an all-zero q, k or v head or key block; "
                           "use more calibration sentences or a larger --key-block")
    return Quantization(
        scale_q / largest(cfg.q_bits), scale_k / largest(cfg.k_bits), peak_v / largest(cfg.v_bits),
        channel, head_dim=dim,
    )


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

    def problems(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
        causal: bool = False,
    ) -> golden.Problems:
        """One layer's ``[B, H, N, Dh]`` float ``q``, ``k``, ``v`` as the engine's ``B·H`` integer problems
        (problem ``b·H + h``), with this layer's thresholds and scale registers."""
        cfg, quant = self.cfg, self.quant
        batch, heads, length, dim = q.shape

        def per_channel(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(values)[None, :, None, :]

        q_int = quantize(q, per_channel(quant.query_step(layer)), cfg.q_bits)
        k_int = quantize(k, per_channel(quant.key_step(layer)), cfg.k_bits)
        v_int = quantize(v, torch.from_numpy(quant.scale_v[layer])[None, :, None, None], cfg.v_bits)
        valid_len = valid.sum(dim=1).numpy().astype(np.int64)
        return golden.Problems(
            q=q_int.reshape(-1, length, dim), k=k_int.reshape(-1, length, dim),
            v=v_int.reshape(-1, length, dim), valid_len=np.repeat(valid_len, heads), causal=causal,
            threshold=np.tile(self.threshold[layer], batch),
            scale_mantissa=np.tile(self.mantissa[layer], batch),
            scale_shift=np.tile(self.shift[layer], batch),
        )

    def to_float(self, layer: int, out: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """The engine's ``[B, H, N, Dh]`` fixed-point outputs in float units of ``v``, as ``like``'s dtype."""
        units = out * 2.0 ** -self.cfg.out_frac_bits * self.quant.scale_v[layer][None, :, None, None]
        return torch.from_numpy(units).to(like.dtype)

    def __call__(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
        causal: bool = False,
    ) -> torch.Tensor:
        batch, heads, length, dim = q.shape
        problems = self.problems(layer, q, k, v, valid, causal)
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        decided = visible & (score >= problems.threshold[:, None, None])
        kept = decided if self.prune else visible
        _, out = golden.softmax(self.cfg, problems, score, kept)
        self._count(layer, q, k, visible.reshape(batch, heads, length, length),
                    decided.reshape(batch, heads, length, length))
        out = out.reshape(batch, heads, length, dim)
        if self.capture:
            self.captured.append(Captured(layer, problems.q.reshape(q.shape), problems.k.reshape(q.shape),
                                          problems.v.reshape(q.shape), problems.valid_len[::heads], out))
        return self.to_float(layer, out, q)

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
