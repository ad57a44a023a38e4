"""Packing Python values into the flat integers of Amaranth data layouts (stream payloads), and back."""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data


def encode(layout: Any, value: Any) -> int:
    """The bits of ``value`` (int, list for arrays, dict for structs) laid out as ``layout``."""
    if isinstance(layout, data.Layout):
        bits = 0
        for key, field in layout:
            bits |= encode(field.shape, value[key]) << field.offset
        return bits
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)


def decode(layout: Any, bits: int) -> Any:
    """The value held in ``bits`` (nested dicts and lists of ints, signed where the shape is signed)."""
    if isinstance(layout, data.ArrayLayout):
        return [decode(field.shape, bits >> field.offset) for _, field in layout]
    if isinstance(layout, data.Layout):
        return {key: decode(field.shape, bits >> field.offset) for key, field in layout}
    shape = Shape.cast(layout)
    value = bits & ((1 << shape.width) - 1)
    if shape.signed and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value
