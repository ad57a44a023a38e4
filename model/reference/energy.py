"""The op-count energy model (``docs/energy.md``): what an attention head costs under a keep policy,
counted from its decisions and priced per operation with Horowitz, ISSCC 2014, 45 nm.

Prices: an add at the smallest listed width that holds its result (8, 16, 32 bits: 0.03, 0.05,
0.1 pJ; wider adds as several 32-bit ones); an ``a × b``-bit multiply as ``a·b`` partial products at
0.2/64 pJ each (the 8-bit entry; the table's 32-bit multiply, 3.1 pJ, is 3 % below this rule's
3.2 pJ); on-chip memory 10 pJ per 64 bits read (an 8 KB SRAM); DRAM 1.3 nJ per 64 bits.

Every count is kept by part: ``front`` (scores and keep decisions), ``back`` (softmax, ``p·v``,
normalization) and ``off_chip`` (K and V from DRAM, once per problem). ``events`` keeps the named
quantities a report shows beside the energy (plane steps, bound checks, multiplies, lookups, bits read).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from leopard.hw.config import EngineConfig, clog2

ADD_PJ = ((8, 0.03), (16, 0.05), (32, 0.1))
"""``(width, pJ)`` of one add (Horowitz, ISSCC 2014, 45 nm)."""
PARTIAL_PRODUCT_PJ = 0.2 / 64
"""One partial product of a multiply: the 8-bit multiply's 0.2 pJ over its 64."""
SRAM_BIT_PJ = 10.0 / 64
"""One bit read from on-chip memory: 10 pJ per 64 bits (8 KB array)."""
DRAM_BIT_PJ = 1300.0 / 64
"""One bit from DRAM: 1.3 nJ per 64 bits (the table's low end)."""

PARTS = ("front", "back", "off_chip")
PRICED = ("add8", "add16", "add32", "partial_products", "sram_bits", "dram_bits")
PJ = {"add8": ADD_PJ[0][1], "add16": ADD_PJ[1][1], "add32": ADD_PJ[2][1],
      "partial_products": PARTIAL_PRODUCT_PJ, "sram_bits": SRAM_BIT_PJ, "dram_bits": DRAM_BIT_PJ}


@dataclass
class Counts:
    """Priced operations per ``(part, kind)`` (``kind`` one of ``PRICED``) and named events."""

    priced: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def __iadd__(self, other: Counts) -> Counts:
        self.priced.update(other.priced)
        self.events.update(other.events)
        return self

    def adds(self, part: str, width: int, count: int) -> None:
        """``count`` adds whose result is ``width`` bits wide."""
        for limit, _ in ADD_PJ:
            if width <= limit:
                self.priced[(part, f"add{limit}")] += count
                return
        self.priced[(part, "add32")] += count * math.ceil(width / 32)

    def multiplies(self, part: str, a_bits: int, b_bits: int, count: int) -> None:
        """``count`` multiplies of an ``a_bits`` by a ``b_bits`` operand."""
        self.priced[(part, "partial_products")] += count * a_bits * b_bits
        self.events["multiplies"] += count

    def reads(self, part: str, bits: int, count: int, event: str) -> None:
        """``count`` on-chip reads of ``bits`` bits each, also counted under the event ``event``."""
        self.priced[(part, "sram_bits")] += count * bits
        self.events[event] += count * bits

    def fetches(self, bits: int, count: int) -> None:
        """``count`` DRAM transfers of ``bits`` bits each."""
        self.priced[("off_chip", "dram_bits")] += count * bits

    def energy_pj(self, part: str) -> float:
        """Energy of one part in pJ."""
        return sum(PJ[kind] * count for (where, kind), count in self.priced.items() if where == part)

    def energies(self) -> dict[str, float]:
        """pJ per part, and ``head`` (front + back, on chip) and ``total`` (with DRAM)."""
        parts = {part: self.energy_pj(part) for part in PARTS}
        return {**parts, "head": parts["front"] + parts["back"], "total": sum(parts.values())}


def tree(counts: Counts, part: str, terms: int, width: int, trees: int) -> None:
    """``trees`` adder trees, each summing ``terms`` inputs of ``width`` bits (level ``l`` adds are
    ``width + l`` bits wide)."""
    while terms > 1:
        width += 1
        counts.adds(part, width, trees * (terms // 2))
        terms = (terms + 1) // 2


def accumulator_bits(cfg: EngineConfig) -> int:
    """Width of the back end's ``A_d = Σ e·v`` accumulator."""
    return clog2(cfg.max_seq_len) + cfg.exp_frac_bits + cfg.v_bits + 1


def exponent_bits(cfg: EngineConfig) -> int:
    """Width of an exponent ``e`` (at most 1.0 with ``exp_frac_bits`` fraction bits)."""
    return cfg.exp_frac_bits + 1


def queries(cfg: EngineConfig, counts: Counts, count: int) -> None:
    """``count`` queries read once each from the query buffer."""
    counts.reads("front", cfg.head_dim * cfg.q_bits, count, "query_bits_read")


def bit_serial_qk(cfg: EngineConfig, counts: Counts, steps: int, checks: int, queries_count: int) -> None:
    """The bit-serial front end: each lane step reads one ``D``-bit key plane, sums the ``D`` query
    elements it selects (a tree of ``q_bits`` inputs) and accumulates at score width; each bound check
    is one compare at score width; each query's ``P = Σ max(q_i, 0)`` is a tree of ``D`` inputs and
    its limit ``θ + P − 1`` one add."""
    counts.reads("front", cfg.head_dim, steps, "key_bits_read")
    tree(counts, "front", cfg.head_dim, cfg.q_bits, steps)
    counts.adds("front", cfg.score_bits, steps + checks)
    counts.events["plane_steps"] += steps
    counts.events["bound_checks"] += checks
    counts.events["qk_bit_ops"] += steps * cfg.head_dim * cfg.q_bits
    tree(counts, "front", cfg.head_dim, cfg.q_bits, queries_count)
    counts.adds("front", cfg.score_bits, queries_count)


def bit_parallel_qk(cfg: EngineConfig, counts: Counts, pairs: int, q_bits: int, k_bits: int) -> None:
    """A bit-parallel dot product per pair: ``D`` reads of ``k_bits``-bit key elements, ``D`` multiplies
    ``q_bits × k_bits`` and their adder tree (a product of two symmetric operands, ``|x| < 2^(b−1)``,
    fits in ``q_bits + k_bits − 1`` bits)."""
    counts.reads("front", cfg.head_dim * k_bits, pairs, "key_bits_read")
    counts.multiplies("front", q_bits, k_bits, pairs * cfg.head_dim)
    tree(counts, "front", cfg.head_dim, q_bits + k_bits - 1, pairs)
    counts.events["qk_bit_ops"] += pairs * cfg.head_dim * q_bits * k_bits


def compares(cfg: EngineConfig, counts: Counts, part: str, count: int) -> None:
    """``count`` compares of two scores."""
    counts.adds(part, cfg.score_bits, count)
    counts.events["compares"] += count


def exponent_lookups(cfg: EngineConfig, counts: Counts, part: str, count: int) -> None:
    """``count`` exponents: the distance to the row's top score and a read of the exponent table."""
    counts.adds(part, cfg.score_bits, count)
    counts.reads(part, exponent_bits(cfg), count, "exp_bits_read")
    counts.events["exp_lookups"] += count


def back_end(cfg: EngineConfig, counts: Counts, kept: int, rows: int, exponents: int | None = None) -> None:
    """Softmax and ``p·v`` over ``kept`` pairs in ``rows`` queries: per kept key its ``v`` row read, ``D``
    multiply-accumulates ``e·v`` and its probability ``e·R``; per query the reciprocal lookup and ``D``
    products ``A_d·R``; and the exponents of ``exponents`` pairs (default ``kept``; fewer when the front
    end computed the others' already): each a top-score compare, the exponent and ``S += e``."""
    exponents = kept if exponents is None else exponents
    compares(cfg, counts, "back", exponents)
    exponent_lookups(cfg, counts, "back", exponents)
    e_bits, acc_bits = exponent_bits(cfg), accumulator_bits(cfg)
    counts.adds("back", e_bits + clog2(cfg.max_seq_len), exponents)
    counts.reads("back", cfg.head_dim * cfg.v_bits, kept, "value_bits_read")
    counts.multiplies("back", e_bits, cfg.v_bits, kept * cfg.head_dim)
    counts.adds("back", acc_bits, kept * cfg.head_dim)
    counts.events["macs"] += kept * cfg.head_dim
    counts.multiplies("back", e_bits, cfg.recip_bits, kept)
    counts.reads("back", cfg.recip_bits, rows, "recip_bits_read")
    counts.events["recip_lookups"] += rows
    counts.multiplies("back", acc_bits, cfg.recip_bits, rows * cfg.head_dim)


def off_chip(
    cfg: EngineConfig, counts: Counts, key_bits: int, tokens: int, values: int | None = None
) -> None:
    """``tokens`` keys of ``key_bits`` bits per element and ``values`` (default ``tokens``) value rows
    from DRAM."""
    counts.fetches(cfg.head_dim * key_bits, tokens)
    counts.fetches(cfg.head_dim * cfg.v_bits, tokens if values is None else values)
