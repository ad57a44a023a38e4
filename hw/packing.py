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


def _kept(cache: dict[int, tuple[Any, Callable]], layout: Any, make: Callable[[Any], Callable]) -> Callable:
    """``make(layout)``, made once per layout object and kept in ``cache``."""
    known = cache.get(id(layout))
    if known is None or known[0] is not layout:
        known = cache[id(layout)] = (layout, make(layout))
    return known[1]


def encoder(layout: Any) -> Callable[[Any], int]:
    """``encode`` for one layout, its field offsets and widths worked out once (kept per layout)."""
    return _kept(_ENCODERS, layout, _make_encoder)


def _make_encoder(layout: Any) -> Callable[[Any], int]:
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
    return function


def decode(layout: Any, bits: int) -> Any:
    """The value held in ``bits`` (nested dicts and lists of ints, signed where the shape is signed)."""
    return decoder(layout)(bits)


_DECODERS: dict[int, tuple[Any, Callable[[int], Any]]] = {}


def decoder(layout: Any) -> Callable[[int], Any]:
    """``decode`` for one layout, its field offsets and widths worked out once (kept per layout)."""
    return _kept(_DECODERS, layout, _make_decoder)


def _make_decoder(layout: Any) -> Callable[[int], Any]:
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
    return function
