"""Checks that a JSON value read from a file has the shape the code reads from it, so that a file of
the wrong shape is one error line naming the file and the place, not a ``KeyError`` deep inside."""

from __future__ import annotations

from typing import Any

from leopard.hw.errors import LeopardError

NUMBER = "number"
"""A JSON number (not a boolean)."""
Shape = Any
"""``NUMBER``, ``str``, ``bool``, ``int``, a dict of key → shape (keys ending in ``?`` optional, extra
keys allowed; the key ``*`` gives the shape of every value), a one-item list ``[shape]`` (a list of such
items), a tuple of alternatives, or None (JSON null)."""


def check(value: Any, shape: Shape, where: str) -> Any:
    """``value`` when it has ``shape``, else ``LeopardError`` naming ``where`` (a file) and the path."""
    problem = _mismatch(value, shape, "")
    if problem is not None:
        place, expected = problem
        raise LeopardError(f"{where}: {place or 'the top level'} must be {expected}")
    return value


def _mismatch(value: Any, shape: Shape, place: str) -> tuple[str, str] | None:
    if isinstance(shape, tuple):
        problems = [_mismatch(value, option, place) for option in shape]
        if all(problems):
            return place, " or ".join(_describe(option) for option in shape)
        return None
    if shape is None:
        return None if value is None else (place, "null")
    if shape == NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else (place, "a number")
    if isinstance(shape, type):
        return None if isinstance(value, shape) and not (shape is int and isinstance(value, bool)) \
            else (place, _describe(shape))
    if isinstance(shape, list):
        if not isinstance(value, list):
            return place, "an array"
        for index, item in enumerate(value):
            problem = _mismatch(item, shape[0], f"{place}[{index}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return place, "an object"
    for key, inner in shape.items():
        if key == "*":
            for name, item in value.items():
                problem = _mismatch(item, inner, f"{place}.{name}".lstrip("."))
                if problem:
                    return problem
            continue
        name = key.removesuffix("?")
        if name not in value:
            if key.endswith("?"):
                continue
            return f"{place}.{name}".lstrip("."), "present"
        problem = _mismatch(value[name], inner, f"{place}.{name}".lstrip("."))
        if problem:
            return problem
    return None


def _describe(shape: Shape) -> str:
    if shape is None:
        return "null"
    if shape == NUMBER:
        return "a number"
    if isinstance(shape, type):
        return {str: "a string", bool: "a boolean", int: "a whole number", dict: "an object",
                list: "an array"}.get(shape, shape.__name__)
    return "an array" if isinstance(shape, list) else "an object"
