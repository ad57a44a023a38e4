"""The engine configuration: one frozen, validated object from which the Verilog, the register map,
the testbench parameters and the golden model's settings are all derived.

A config is written as JSON beside every generated artifact and inside every trace file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import parse_json, read_json

SCALE_SHIFT_BITS = 6
MIN_BUS_WIDTH = 22


class ConfigError(LeopardError):
    """An impossible or malformed engine configuration."""


def clog2(value: int) -> int:
    """Bits needed to count ``value`` distinct values (0 for 1)."""
    return max(0, (value - 1).bit_length())


MICROARCHITECTURE = ("lanes", "v_lanes", "result_buffers", "queries_in_flight", "fifo_depth", "bus_width",
                     "skip_zero_planes", "status_stream")
"""Fields that change how the engine computes, not what: a trace made under one config runs unchanged
on another that differs only in these."""


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """One attention-head engine.

    Widths are in bits. Scores are exact integers ``q·k``; keys are streamed bit-serially, MSB first,
    one plane per lane per cycle. The fixed-point softmax formats are defined in ``docs/arithmetic.md``.
    """

    head_dim: int = 32
    """``D``: elements per query, key and value vector."""
    q_bits: int = 8
    """Two's complement width of a query element."""
    k_bits: int = 8
    """Two's complement width of a key element, and the number of bit planes per key."""
    v_bits: int = 8
    """Two's complement width of a value element."""
    lanes: int = 8
    """``L``: bit-serial dot-product lanes sharing the key store."""
    max_seq_len: int = 128
    """``N``: most keys (and queries) one problem may hold."""
    threshold_regs: int = 72
    """Threshold/scale register pairs, one per (layer, head) slot."""
    exp_index_bits: int = 8
    """``X``: the exponent table has ``2**X`` entries (fraction bits of ``log2`` kept)."""
    exp_frac_bits: int = 15
    """``E``: exponent values are ``round(2**E * 2**-f)``, so the largest kept key weighs ``2**E``."""
    recip_index_bits: int = 10
    """``Rx``: mantissa bits of the exponent sum that index the reciprocal table."""
    recip_bits: int = 16
    """``Rb``: reciprocal table entries are ``round(2**Rb / mantissa)``."""
    prob_frac_bits: int = 15
    """``Fp``: fraction bits of the probabilities."""
    out_frac_bits: int = 8
    """``Fo``: fraction bits of the output vector, in units of ``v``."""
    scale_mantissa_bits: int = 16
    """Mantissa width of the softmax ``scale`` register (the shift field is 6 bits)."""
    v_lanes: int | None = None
    """Elements of a ``v`` row the back end multiplies per cycle (a divisor of ``head_dim``, by default
    all of them): a kept key costs ``head_dim / v_lanes`` back-end cycles."""
    result_buffers: int = 3
    """Accumulator/exponent buffers between the softmax pass and the normalizer: the pass may run
    that many queries ahead of the packet being sent (3 keeps a dense back end at one key per cycle)."""
    queries_in_flight: int = 4
    """Queries whose keys may be in the lanes at once (a power of two): query ``i`` is dispatched only
    once query ``i − queries_in_flight`` has completed."""
    fifo_depth: int = 16
    """Entries of the FIFO between the front end and its consumer (at least 4: the smallest that takes a
    beat every cycle without the front end waiting)."""
    bus_width: int = 32
    """Data width of the memory-mapped register bus."""
    early_termination: bool = True
    """Build the bound comparators; when False the engine always runs dense."""
    skip_zero_planes: bool = False
    """With early termination, a key starts at the sign plane of its narrowest two's complement width
    and skips its all-zero planes (``docs/arithmetic.md`` §2): a lane cycle per non-zero plane."""
    status_stream: bool = True
    """Build the per-key status stream (index, planes, kept)."""

    def __post_init__(self) -> None:
        if self.v_lanes is None:
            object.__setattr__(self, "v_lanes", self.head_dim)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ConfigError(f"{field.name} must be true or false, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{field.name} must be an integer, got {value!r}")
        _check_range("head_dim", self.head_dim, 1, 256)
        for name in ("q_bits", "k_bits", "v_bits"):
            _check_range(name, getattr(self, name), 2, 16)
        _check_range("lanes", self.lanes, 1, 64)
        _check_range("max_seq_len", self.max_seq_len, 1, 4096)
        _check_range("threshold_regs", self.threshold_regs, 1, 1024)
        _check_range("exp_index_bits", self.exp_index_bits, 1, 12)
        _check_range("exp_frac_bits", self.exp_frac_bits, 4, 24)
        _check_range("recip_index_bits", self.recip_index_bits, 1, 12)
        _check_range("recip_bits", self.recip_bits, 4, 24)
        _check_range("prob_frac_bits", self.prob_frac_bits, 1, 24)
        _check_range("out_frac_bits", self.out_frac_bits, 0, 16)
        _check_range("scale_mantissa_bits", self.scale_mantissa_bits, 4, 24)
        _check_range("v_lanes", self.v_lanes, 1, 256)
        if self.head_dim % self.v_lanes:
            raise ConfigError(f"v_lanes ({self.v_lanes}) must divide head_dim ({self.head_dim})")
        _check_range("result_buffers", self.result_buffers, 2, 8)
        _check_range("queries_in_flight", self.queries_in_flight, 2, 16)
        if self.queries_in_flight & (self.queries_in_flight - 1):
            raise ConfigError(f"queries_in_flight must be a power of two, got {self.queries_in_flight}")
        if self.fifo_depth in (2, 3):
            raise ConfigError(f"fifo_depth must be at least 4, got {self.fifo_depth}: a FIFO taking a beat "
                              "every cycle holds 2, and the front end waits once its FIFO holds "
                              "fifo_depth − 1, so it would stall with nothing back-pressuring it")
        _check_range("fifo_depth", self.fifo_depth, 4, 4096)
        _check_range("bus_width", self.bus_width, 8, 64)
        if self.recip_index_bits > self.exp_frac_bits:
            raise ConfigError(
                f"recip_index_bits ({self.recip_index_bits}) must not exceed exp_frac_bits "
                f"({self.exp_frac_bits}): the exponent sum has only that many mantissa bits"
            )
        if self.prob_frac_bits >= self.recip_bits + self.exp_frac_bits:
            raise ConfigError(
                f"prob_frac_bits ({self.prob_frac_bits}) must be below recip_bits + exp_frac_bits "
                f"({self.recip_bits + self.exp_frac_bits})"
            )
        if self.out_frac_bits >= self.recip_bits + self.exp_frac_bits:
            raise ConfigError(
                f"out_frac_bits ({self.out_frac_bits}) must be below recip_bits + exp_frac_bits "
                f"({self.recip_bits + self.exp_frac_bits})"
            )
        if self.score_bits + self.scale_mantissa_bits > 62:
            raise ConfigError(
                f"score_bits + scale_mantissa_bits ({self.score_bits + self.scale_mantissa_bits}) "
                "exceeds 62: narrow q_bits, k_bits or scale_mantissa_bits"
            )
        accumulator = clog2(self.max_seq_len) + self.exp_frac_bits + self.v_bits + self.recip_bits + 1
        if accumulator > 62:
            raise ConfigError(
                f"the output accumulator times the reciprocal needs {accumulator} bits (over 62): "
                "narrow max_seq_len, exp_frac_bits, v_bits or recip_bits"
            )
        widest = max(MIN_BUS_WIDTH, self.score_bits, self.scale_mantissa_bits + SCALE_SHIFT_BITS)
        if self.bus_width < widest:
            raise ConfigError(
                f"bus_width {self.bus_width} cannot hold a {widest}-bit register; "
                f"use a bus_width of at least {widest}"
            )

    @property
    def score_bits(self) -> int:
        """Signed width holding every exact score ``q·k`` (and every threshold register value)."""
        return self.q_bits + self.k_bits + clog2(self.head_dim)

    @property
    def threshold_min(self) -> int:
        return -(1 << (self.score_bits - 1))

    @property
    def threshold_max(self) -> int:
        return (1 << (self.score_bits - 1)) - 1

    @property
    def index_bits(self) -> int:
        """Width of a key or query index (``0 … N−1``)."""
        return max(1, clog2(self.max_seq_len))

    @property
    def length_bits(self) -> int:
        """Width of a count of keys or queries (``0 … N``)."""
        return self.max_seq_len.bit_length()

    @property
    def plane_count_bits(self) -> int:
        """Width of a count of planes (``1 … k_bits``)."""
        return self.k_bits.bit_length()

    @property
    def pos_sum_bits(self) -> int:
        """Unsigned width of ``P = Σ max(q_i, 0)``."""
        return (self.head_dim * ((1 << (self.q_bits - 1)) - 1)).bit_length()

    @property
    def v_groups(self) -> int:
        """Back-end cycles per kept key: ``head_dim / v_lanes``."""
        return self.head_dim // (self.v_lanes or self.head_dim)

    @property
    def exp_bits(self) -> int:
        """Unsigned width of an exponent ``e ≤ 2**exp_frac_bits``."""
        return self.exp_frac_bits + 1

    @property
    def sum_bits(self) -> int:
        """Unsigned width of the exponent sum ``S ≤ N·2**E``."""
        return (self.max_seq_len << self.exp_frac_bits).bit_length()

    @property
    def acc_bits(self) -> int:
        """Signed width of an output accumulator ``A_d = Σ e_j·v_jd``."""
        return (self.max_seq_len << (self.exp_frac_bits + self.v_bits - 1)).bit_length() + 1

    @property
    def out_bits(self) -> int:
        """Signed width of an output element (``v`` units with ``out_frac_bits`` fraction bits)."""
        return self.v_bits + self.out_frac_bits + 1

    @property
    def prob_bits(self) -> int:
        """Unsigned width of a probability (``prob_frac_bits`` fraction bits, at most 1.0 + rounding)."""
        return self.prob_frac_bits + 1

    def computes_like(self, other: EngineConfig) -> bool:
        """Whether ``other`` differs from this config only in ``MICROARCHITECTURE`` fields."""
        mine, theirs = self.to_dict(), other.to_dict()
        return all(mine[name] == theirs[name] for name in mine if name not in MICROARCHITECTURE)

    def replace(self, **changes: Any) -> EngineConfig:
        """A copy with some fields changed, validated like any other config."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, two-space indent, trailing newline (byte-stable)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: Any) -> EngineConfig:
        """A config from a mapping; missing fields take the defaults, unknown ones are an error."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(values).__name__}")
        return cls().replace(**values)

    @classmethod
    def from_json(cls, text: str) -> EngineConfig:
        return cls.from_dict(parse_json(text, "config", ConfigError))

    @classmethod
    def load(cls, path: str | Path) -> EngineConfig:
        """The config in the JSON file ``path``; every problem is a one-line ``ConfigError``."""
        try:
            return cls.from_dict(read_json(path, "config", expect=None))
        except LeopardError as error:
            raise ConfigError(f"{path}: {error}" if isinstance(error, ConfigError) else str(error)) from None


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value}")


PRESETS: dict[str, EngineConfig] = {
    "tiny": EngineConfig(
        head_dim=4, q_bits=4, k_bits=4, v_bits=4, lanes=2, max_seq_len=8, threshold_regs=4, v_lanes=2,
        exp_index_bits=6, exp_frac_bits=10, recip_index_bits=6, recip_bits=12,
        prob_frac_bits=10, out_frac_bits=4, fifo_depth=4,
    ),
    "small": EngineConfig(
        head_dim=6, q_bits=5, k_bits=6, v_bits=5, lanes=3, max_seq_len=20, threshold_regs=8, v_lanes=6,
        exp_index_bits=7, exp_frac_bits=12, recip_index_bits=8, recip_bits=14,
        prob_frac_bits=12, out_frac_bits=6, fifo_depth=8,
    ),
    "minilm": EngineConfig(),
    "minilm-k12": EngineConfig(k_bits=12),
    "smollm2": EngineConfig(head_dim=64),
}


def preset(name: str) -> EngineConfig:
    """The named preset, or a one-line error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown preset {name!r}; known presets: {known}") from None
