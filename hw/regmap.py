"""The memory-mapped register map, generated from the config: the one description from which the RTL
register block, ``regmap.json``, the software constants and the testbench addresses all derive.

The bus is word addressed: one register per address, ``bus_width`` data bits, a write takes effect at
the clock edge that samples ``w_en``, a read returns ``r_data`` one cycle after ``r_en``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from leopard.hw.config import SCALE_SHIFT_BITS, EngineConfig, clog2

MAGIC = 0x4C50
VERSION = 1
ARRAY_BASE = 16


@dataclass(frozen=True)
class Field:
    """Bits ``[lsb, lsb + width)`` of a register."""

    name: str
    lsb: int
    width: int
    signed: bool = False
    doc: str = ""

    def insert(self, value: int) -> int:
        """``value`` placed in this field's bits of a register word; refused when it does not fit."""
        low, high = (-(1 << (self.width - 1)), 1 << (self.width - 1)) if self.signed else (0, 1 << self.width)
        if not low <= value < high:
            raise ValueError(f"{value} does not fit the {self.width}-bit field {self.name!r}")
        return (value & ((1 << self.width) - 1)) << self.lsb

    def extract(self, word: int) -> int:
        """This field's value in a register word (sign-extended when the field is signed)."""
        value = (word >> self.lsb) & ((1 << self.width) - 1)
        if self.signed and value >> (self.width - 1):
            value -= 1 << self.width
        return value


@dataclass(frozen=True)
class Register:
    """One register, or an array of ``count`` registers at consecutive addresses."""

    name: str
    offset: int
    access: str
    """``ro`` (read only), ``rw`` (read/write), ``wo`` (write-only strobe, reads 0)."""
    fields: tuple[Field, ...]
    doc: str
    count: int = 1

    @property
    def width(self) -> int:
        return max(f.lsb + f.width for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def pack(self, **values: int) -> int:
        """The register word holding the named fields' values (fields not named are 0)."""
        unknown = sorted(set(values) - {f.name for f in self.fields})
        if unknown:
            raise ValueError(f"register {self.name} has no field {unknown[0]!r}")
        return sum(f.insert(int(values[f.name])) for f in self.fields if f.name in values)

    def unpack(self, word: int) -> dict[str, int]:
        """Every field's value in the register word ``word``."""
        return {f.name: f.extract(word) for f in self.fields}


@dataclass(frozen=True)
class RegisterMap:
    data_width: int
    addr_width: int
    registers: tuple[Register, ...] = field(default_factory=tuple)
    constants: dict[str, int] = field(default_factory=dict)
    """Values of the read-only identification and parameter registers of this build."""

    def __getitem__(self, name: str) -> Register:
        for register in self.registers:
            if register.name == name:
                return register
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "leopard-regmap/1",
            "data_width": self.data_width,
            "addr_width": self.addr_width,
            "registers": [asdict(r) for r in self.registers],
            "constants": dict(self.constants),
        }


def _one(name: str, width: int, doc: str, *, signed: bool = False) -> tuple[Field, ...]:
    return (Field(name, 0, width, signed, doc),)


@functools.cache
def register_map(cfg: EngineConfig) -> RegisterMap:
    """The register map of an engine built from ``cfg``."""
    slot_bits = max(1, clog2(cfg.threshold_regs))
    w = cfg.bus_width
    registers = (
        Register("ID", 0, "ro", (
            Field("magic", 0, 16, doc=f"0x{MAGIC:04X}"),
            Field("version", 16, 6, doc="register map version"),
        ), "identifies the engine"),
        Register("PARAMS0", 1, "ro", (
            Field("head_dim", 0, 9), Field("lanes", 9, 7),
        ), "build parameters"),
        Register("PARAMS1", 2, "ro", (
            Field("q_bits", 0, 5), Field("k_bits", 5, 5), Field("v_bits", 10, 5),
            Field("early_termination", 15, 1), Field("status_stream", 16, 1),
        ), "build parameters"),
        Register("PARAMS2", 3, "ro", _one("max_seq_len", 13, ""), "build parameters"),
        Register("PARAMS3", 4, "ro", _one("threshold_regs", 11, ""), "build parameters"),
        Register("CTRL", 5, "wo", _one("start", 1, "write 1: latch the job registers and start"),
                 "job control"),
        Register("STATUS", 6, "ro", (
            Field("busy", 0, 1, doc="a job is running"),
            Field("done", 1, 1, doc="the last job completed (cleared by start)"),
            Field("error", 2, 1, doc="the last start was refused: job registers out of range"),
        ), "job status"),
        Register("MODE", 7, "rw", (
            Field("dense", 0, 1, doc="no early termination, no threshold: every key kept"),
            Field("causal", 1, 1, doc="query at position p sees keys 0 … p"),
        ), "mode of the next job"),
        Register("JOB_KEYS", 8, "rw", _one("keys", cfg.length_bits, "valid keys, 1 … max_seq_len"),
                 "keys 0 … keys−1 are valid"),
        Register("JOB_QUERIES", 9, "rw", _one("queries", cfg.length_bits, "queries in the job"),
                 "queries the job takes from the Q stream"),
        Register("JOB_FIRST", 10, "rw", _one("first", cfg.index_bits, "position of the job's first query"),
                 "causal position of the first query"),
        Register("JOB_SLOT", 11, "rw", _one("slot", slot_bits, "threshold/scale register pair to use"),
                 "register pair of the job's (layer, head)"),
        Register("CYCLES", 12, "ro", _one("cycles", w, "busy cycles of the last job, modulo 2**bus_width"),
                 "cleared by start, counts while busy"),
        Register("KEPT", 13, "ro", _one("kept", w, "keys kept in the last job"), "cleared by start"),
        Register("PLANES", 14, "ro", _one("planes", w, "bit planes processed in the last job"),
                 "cleared by start"),
        Register("QUERIES_DONE", 15, "ro", _one("queries", cfg.length_bits, "queries completed"),
                 "cleared by start"),
        Register("THRESHOLD", ARRAY_BASE, "rw",
                 _one("threshold", cfg.score_bits, "θ_int: keys with score < θ are pruned", signed=True),
                 "one per (layer, head) slot", count=cfg.threshold_regs),
        Register("SCALE", ARRAY_BASE + cfg.threshold_regs, "rw", (
            Field("mantissa", 0, cfg.scale_mantissa_bits, doc="M"),
            Field("shift", cfg.scale_mantissa_bits, SCALE_SHIFT_BITS, doc="sh: scale·log2(e) ≈ M·2**-sh"),
        ), "softmax scale, one per (layer, head) slot", count=cfg.threshold_regs),
    )
    addr_width = clog2(ARRAY_BASE + 2 * cfg.threshold_regs)
    by_name = {register.name: register for register in registers}
    settings = cfg.to_dict()
    constants = {
        "ID": by_name["ID"].pack(magic=MAGIC, version=VERSION),
        **{name: by_name[name].pack(**{f.name: settings[f.name] for f in by_name[name].fields})
           for name in ("PARAMS0", "PARAMS1", "PARAMS2", "PARAMS3")},
    }
    return RegisterMap(w, addr_width, registers, constants)


def params_values(cfg: EngineConfig) -> dict[str, int]:
    """Values of the read-only identification and parameter registers."""
    return register_map(cfg).constants
