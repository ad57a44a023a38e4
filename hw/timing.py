"""Timing facts of the RTL that the cycle model (``model/reference/cycles.py``) is built on."""

from __future__ import annotations

from leopard.hw.config import EngineConfig, clog2

DISPATCH_START = 2
"""The first keys are handed to the lanes' head registers 2 cycles after the cycle ``start`` is written:
the query unit takes the first query in cycle 1 and it is in the dispatch slot in cycle 2."""

KEPT_FIFO_LATENCY = 2
"""Cycles from the front end pushing a kept beat to the back end taking it from the FIFO."""

PASS_LATENCY = 4
"""Cycles from the softmax pass issuing a query's last kept key to its accumulators being final."""

BITPARALLEL_DISPATCH_START = 1
"""The bit-parallel unit dispatches the first key in the cycle after ``start`` is written (it reads the
query at the head of the Q stream in place)."""

BITPARALLEL_READ_STAGES = 2
"""Cycles from a key's dispatch in the bit-parallel unit to its elements in a register: the key store's
read, then a register."""


def bitparallel_tree_levels(cfg: EngineConfig, *, split: bool) -> int:
    """Levels of the bit-parallel unit's adder tree: over ``D`` products, or ``2·D`` half products."""
    return clog2(cfg.head_dim * (2 if split else 1))


def bitparallel_latency(cfg: EngineConfig, *, split: bool = False) -> int:
    """Cycles from a key's dispatch in the bit-parallel unit (``hw/rtl/bitparallel.py``; ``split``: its
    LUT variant) to its decision on the output beats: the read stages, the products, each level of the
    adder tree, and the threshold compare, one register each."""
    return BITPARALLEL_READ_STAGES + 1 + bitparallel_tree_levels(cfg, split=split) + 1
