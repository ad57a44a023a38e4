"""Packing Python values into the flat integers of Amaranth data layouts (stream payloads), and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data


def encode(layout: Any, value: Any) -> int:
    """The bits of ``value`` (int, list for arrays, dict for structs) laid out as ``layout``."""
    return encoder(layout)(value)


_ENCODERS: dict[int, tuple[Any, Callable[[Any], int]]] = {}


def encoder(layout: Any) -> Callable[[Any], int]:
    """``encode`` for one layout, its field offsets and widths worked out once (kept per layout)."""
    known = _ENCODERS.get(id(layout))
    if known is not None and known[0] is layout:
        return known[1]
    if isinstance(layout, data.Layout):
        parts = [(key, field.offset, encoder(field.shape)) for key, field in layout]

        def function(value: Any) -> int:
            bits = 0
            for key, offset, part in parts:
                bits |= part(value[key]) << offset
            return bits
    else:
        mask = (1 << Shape.cast(layout).width) - 1

        def function(value: Any) -> int:
            return int(value) & mask
    _ENCODERS[id(layout)] = (layout, function)
    return function


def decode(layout: Any, bits: int) -> Any:
    """The value held in ``bits`` (nested dicts and lists of ints, signed where the shape is signed)."""
    return decoder(layout)(bits)


_DECODERS: dict[int, tuple[Any, Callable[[int], Any]]] = {}


def decoder(layout: Any) -> Callable[[int], Any]:
    """``decode`` for one layout, its field offsets and widths worked out once (kept per layout)."""
    known = _DECODERS.get(id(layout))
    if known is not None and known[0] is layout:
        return known[1]
    if isinstance(layout, data.Layout):
        parts = [(key, field.offset, decoder(field.shape)) for key, field in layout]
        if isinstance(layout, data.ArrayLayout):
            def function(bits: int) -> Any:
                return [part(bits >> offset) for _, offset, part in parts]
        else:
            def function(bits: int) -> Any:
                return {key: part(bits >> offset) for key, offset, part in parts}
    else:
        shape = Shape.cast(layout)
        mask, top = (1 << shape.width) - 1, 1 << shape.width
        if shape.signed:
            sign = 1 << (shape.width - 1)

            def function(bits: int) -> Any:
                value = bits & mask
                return value - top if value & sign else value
        else:
            def function(bits: int) -> Any:
                return bits & mask
    _DECODERS[id(layout)] = (layout, function)
    return function
