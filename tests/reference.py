"""Plain-Python references, written independently of the vectorized golden model, one key or one
query at a time, straight from BRIEF §1 and docs/arithmetic.md."""

from __future__ import annotations

import math
from fractions import Fraction


def lane(q: list[int], k: list[int], theta: int, bits: int, dense: bool = False) -> tuple[int, bool]:
    """(planes processed, kept) of one key streamed MSB first through the exact bound."""
    positive = sum(max(x, 0) for x in q)
    acc = 0
    for step in range(bits):
        r = bits - 1 - step
        plane = [(x >> r) & 1 for x in k]
        partial = sum(a * b for a, b in zip(q, plane, strict=True))
        acc = 2 * acc + (-partial if step == 0 else partial)
        bound = acc * 2**r + (2**r - 1) * positive
        if not dense and bound < theta:
            return step + 1, False
    assert acc == sum(a * b for a, b in zip(q, k, strict=True))
    return bits, dense or acc >= theta


def processed_planes(k: list[int], bits: int) -> tuple[list[int], int]:
    """(planes a skipping lane processes, index of the sign plane of the key's narrowest width)."""
    planes = [[(x >> (bits - 1 - t)) & 1 for x in k] for t in range(bits)]
    extension = 0
    while extension < bits - 1 and planes[extension] == planes[extension + 1]:
        extension += 1
    return [t for t in range(extension, bits) if any(planes[t])] or [bits - 1], extension


def lane_skipping(q: list[int], k: list[int], theta: int, bits: int) -> tuple[int, bool]:
    """(cycles, kept) of one key when the lane starts at the sign plane of the key's narrowest width
    and skips all-zero planes (``skip_zero_planes``)."""
    planes = [[(x >> (bits - 1 - t)) & 1 for x in k] for t in range(bits)]
    processed, extension = processed_planes(k, bits)
    positive = sum(max(x, 0) for x in q)
    acc = 0
    for step, t in enumerate(processed):
        following = processed[step + 1] if step + 1 < len(processed) else bits
        partial = sum(a * b for a, b in zip(q, planes[t], strict=True))
        acc = 2 * acc + (-partial if t == extension else partial)
        acc <<= following - 1 - t
        r = bits - following
        if acc * 2**r + (2**r - 1) * positive < theta:
            return step + 1, False
    assert acc == sum(a * b for a, b in zip(q, k, strict=True))
    return len(processed), acc >= theta


def softmax_query(
    scores: list[int], values: list[list[int]], mantissa: int, shift: int, cfg
) -> tuple[list[int], list[int]]:
    """(probabilities, output) of one query over its kept keys, per docs/arithmetic.md."""
    if not scores:
        return [], [0] * cfg.head_dim
    X, E = cfg.exp_index_bits, cfg.exp_frac_bits
    rx, rb = cfg.recip_index_bits, cfg.recip_bits
    top = max(scores)
    exps = []
    for s in scores:
        y = (top - s) * mantissa
        z = (y + 2 ** (shift - X - 1)) >> (shift - X)
        n, f = z >> X, z % 2**X
        table = math.floor(2**E * 2.0 ** (-f / 2**X) + 0.5)
        exps.append(table >> n if n <= E else 0)
    total = sum(exps)
    k = total.bit_length() - 1
    index = (total >> (k - rx)) - 2**rx
    recip = round_half_up(2**rb, 1 + (index + 0.5) / 2**rx)
    probs = [(e * recip + 2 ** (rb + k - cfg.prob_frac_bits - 1)) >> (rb + k - cfg.prob_frac_bits)
             for e in exps]
    shift_out = rb + k - cfg.out_frac_bits
    out = []
    for d in range(cfg.head_dim):
        acc = sum(e * row[d] for e, row in zip(exps, values, strict=True))
        out.append((acc * recip + 2 ** (shift_out - 1)) >> shift_out)
    return probs, out


def round_half_up(numerator: int, denominator: float) -> int:
    """round(numerator / denominator), half up, exactly for a dyadic rational denominator."""
    value = Fraction(numerator) / Fraction(denominator)
    return math.floor(value + Fraction(1, 2))


def pair_sums(vector):
    """The query unit's pair sums q[2j] + q[2j+1] of a query given as integers."""
    return [vector[2 * j] + vector[2 * j + 1] for j in range(len(vector) // 2)]
