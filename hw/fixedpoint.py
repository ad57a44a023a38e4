"""The fixed-point softmax of ``docs/arithmetic.md``: tables, the ``scale`` register encoding, and the
vectorized NumPy reference the RTL must match bit for bit.

All integer arithmetic here is exact in ``int64``; ``EngineConfig`` refuses widths that would not be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leopard.hw.config import SCALE_SHIFT_BITS, EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.regmap import register_map

LOG2_E = 1.0 / math.log(2.0)


def exp_table(cfg: EngineConfig) -> np.ndarray:
    """``EXP[f] = floor(2**E * 2**(-f / 2**X) + 1/2)`` for ``f`` in ``[0, 2**X)``; ``EXP[0] = 2**E``."""
    size = 1 << cfg.exp_index_bits
    one = 1 << cfg.exp_frac_bits
    return np.array([math.floor(one * 2.0 ** (-f / size) + 0.5) for f in range(size)], np.int64)


def recip_table(cfg: EngineConfig) -> np.ndarray:
    """``RECIP[i] = round(2**Rb / (1 + (i + 1/2) / 2**Rx))``, half up, computed exactly in integers."""
    rx, rb = cfg.recip_index_bits, cfg.recip_bits
    den = (1 << (rx + 1)) + 2 * np.arange(1 << rx, dtype=np.int64) + 1
    num = 1 << (rb + rx + 1)
    return (2 * num + den) // (2 * den)


@dataclass(frozen=True)
class ScaleRegister:
    """``scale·log2(e) ≈ mantissa · 2**-shift``: the per-(layer, head) softmax scale register."""

    mantissa: int
    shift: int

    def value(self) -> float:
        """The scale (natural-log units, i.e. the factor on the integer score) this register holds."""
        return self.mantissa * 2.0 ** -self.shift / LOG2_E

    def word(self, cfg: EngineConfig) -> int:
        """The ``SCALE`` register word (``regmap``: mantissa in the low bits, shift above it)."""
        return register_map(cfg)["SCALE"].pack(mantissa=self.mantissa, shift=self.shift)

    @classmethod
    def from_word(cls, cfg: EngineConfig, word: int) -> ScaleRegister:
        """The register a ``SCALE`` word holds."""
        fields = register_map(cfg)["SCALE"].unpack(word)
        return cls(fields["mantissa"], fields["shift"])


def min_scale_shift(cfg: EngineConfig) -> int:
    """The smallest shift the exponent unit accepts: it needs ``X + 1`` fraction bits of ``y``."""
    return cfg.exp_index_bits + 1


def encode_scale(cfg: EngineConfig, scale: float) -> ScaleRegister:
    """The register closest to ``scale`` (the factor turning an integer score into a logit).

    The mantissa is normalized to ``[2**(Mb-1), 2**Mb)`` where the shift range allows.
    """
    if not math.isfinite(scale) or scale <= 0.0:
        raise LeopardError(f"scale must be a positive finite number, got {scale!r}")
    bits = cfg.scale_mantissa_bits
    c = scale * LOG2_E
    shift = bits - 1 - math.floor(math.log2(c))
    if round(c * 2.0**shift) >= 1 << bits:
        shift -= 1
    max_shift = (1 << SCALE_SHIFT_BITS) - 1
    shift = min(shift, max_shift)
    if shift < min_scale_shift(cfg):
        largest = ((1 << bits) - 1) * 2.0 ** -min_scale_shift(cfg) / LOG2_E
        raise LeopardError(f"scale {scale:g} is too large for the scale register (at most {largest:g})")
    mantissa = round(c * 2.0**shift)
    if mantissa == 0:
        smallest = 2.0**-max_shift / LOG2_E
        raise LeopardError(f"scale {scale:g} is too small for the scale register (at least {smallest:g})")
    return ScaleRegister(mantissa, shift)


def exponents(
    cfg: EngineConfig, x: np.ndarray, mantissa: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """``e = EXP[f] >> n`` for score distances ``x = max - s ≥ 0`` (any shape; scale broadcast).

    ``z = round(x·M / 2**(shift - X))`` (half up), ``n = z >> X``, ``f = z mod 2**X``;
    ``e = 0`` once ``n > E``.
    """
    X, E = cfg.exp_index_bits, cfg.exp_frac_bits
    drop = shift - X
    y = x * mantissa
    z = (y + (np.int64(1) << (drop - 1))) >> drop
    n = np.minimum(z >> X, E + 1)
    f = z & ((1 << X) - 1)
    return exp_table(cfg)[f] >> n


def normalize_sum(cfg: EngineConfig, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(RECIP[idx], k)`` for exponent sums ``S ≥ 2**E``: ``1/S ≈ RECIP[idx] · 2**-(Rb + k)``."""
    rx = cfg.recip_index_bits
    k = _bit_length(total) - 1
    idx = (total >> (k - rx)) - (1 << rx)
    return recip_table(cfg)[idx], k


def round_shift(value: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(value + 2**(shift-1)) >> shift``: round half up (towards +∞), arithmetic shift, shift ≥ 1."""
    return (value + (np.int64(1) << (shift - 1))) >> shift


def _bit_length(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` for positive int64 arrays, exactly (no floating point)."""
    values = np.asarray(values, np.int64)
    out = np.zeros(values.shape, np.int64)
    rest = values.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.int64(1) << step)
        out += np.where(big, step, 0)
        rest = np.where(big, rest >> step, rest)
    return out + (rest > 0)


def output_error_bound(cfg: EngineConfig, kept: int, vmax: float) -> float:
    """Worst-case ``|o·2**-Fo − o_float|`` (in ``v`` units) for ``kept`` keys with ``|v| ≤ vmax``,
    against float attention at the unquantized scale; see ``docs/arithmetic.md`` §Error bound."""
    X, E = cfg.exp_index_bits, cfg.exp_frac_bits
    eta = 2.0 ** -(X + 1) + (E + 2) * 2.0 ** -cfg.scale_mantissa_bits
    alpha = 2.0**eta - 1.0
    beta = 1.5 * 2.0**-E
    spread = alpha + kept * beta
    rho = 2.0 ** -(cfg.recip_index_bits + 1) + 2.0 ** -(cfg.recip_bits - 1)
    return vmax * (2.0 * spread / (1.0 - spread) + rho * (1.0 + spread)) + 2.0 ** -(cfg.out_frac_bits + 1)
