"""Small combinational building blocks."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Const, Module, Signal, Value, ValueLike


def tree_sum(values: Sequence[ValueLike]) -> Value:
    """Balanced adder tree (depth ``⌈log2 n⌉``); widths grow as Amaranth's ``+`` does."""
    level = [Value.cast(v) for v in values]
    if not level:
        raise ValueError("tree_sum of nothing")
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def carry_tree(m: Module, values: Sequence[ValueLike], name: str) -> Value:
    """``tree_sum`` with every partial sum a kept wire (combinational): synthesis then maps each adder on
    its own carry chain instead of merging the tree into one multi-operand adder built from LUTs."""
    level = [Value.cast(v) for v in values]
    if not level:
        raise ValueError("carry_tree of nothing")
    depth = 0
    while len(level) > 1:
        depth += 1
        sums = []
        for index in range(0, len(level) - 1, 2):
            total = level[index] + level[index + 1]
            wire = Signal(total.shape(), name=f"{name}_l{depth}_{index // 2}", attrs={"keep": 1})
            m.d.comb += wire.eq(total)
            sums.append(wire)
        level = sums + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def popcount(bits: Sequence[ValueLike]) -> Value:
    """Number of set bits among single-bit values."""
    return tree_sum(list(bits))


def round_shift(m: Module, value: ValueLike, shift: ValueLike, *, name: str) -> Value:
    """``(value + 2**(shift−1)) >> shift`` (round half up) for a run-time ``shift ≥ 1``."""
    value = Value.cast(value)
    shift = Value.cast(shift)
    amount = Signal(len(shift), name=f"{name}_shift")
    bias = Signal(len(value) + 1, name=f"{name}_bias")
    m.d.comb += [amount.eq(shift - 1), bias.eq(Const(1, len(bias)) << amount)]
    return (value + bias) >> shift


def lowest_set(m: Module, bits: ValueLike, width: int, *, name: str) -> tuple[Signal, Signal]:
    """``(found, index)`` of the lowest set bit of ``bits`` (combinational priority encoder)."""
    bits = Value.cast(bits)
    found = Signal(name=f"{name}_found")
    index = Signal(range(max(width, 2)), name=f"{name}_index")
    for position in reversed(range(width)):
        with m.If(bits[position]):
            m.d.comb += [found.eq(1), index.eq(position)]
    return found, index
