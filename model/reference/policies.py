"""Keep policies: which (query, key) pairs of one layer's integer problems reach the softmax, with what
scores, and what deciding that costs (``energy.Counts``). leopard's bound and its dense mode, and the
peers a user compares against (``BRIEF.md`` §7), each from its paper, on the engine's integers:

- ``Dense``: every visible pair, on the bit-serial engine in dense mode or on a bit-parallel unit;
- ``Leopard``: the exact MSB-first bound (``golden.bound``), pruning ``s < θ``;
- ``TopK``: the ``k`` largest scores of each query, ``k`` per (layer, head) (ties: the lower key index);
- ``Sanger``: a ``bits``-bit prediction of every score, its softmax, and the pairs whose predicted
  probability reaches ``threshold`` computed in full (Lu et al., MICRO 2021);
- ``SpAtten``: cascade token and head pruning by accumulated attention probability and head-output
  magnitude, and progressive quantization: scores from the keys' MSB half, recomputed with all key bits
  for a query whose MSB-half probabilities are flat (largest at most ``pq_threshold``) (Wang et al.,
  HPCA 2021).

Problems are ``B·H`` per layer, problem ``b·H + h`` (``HardwareCore.problems``). A policy with state
across layers (SpAtten) keeps it in the ``state`` dict its caller creates per batch of sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig, clog2
from leopard.model.reference import energy, golden


@dataclass(frozen=True)
class Attended:
    """One layer under a policy: ``kept`` ``[P, N, N]`` pairs and the ``score`` the softmax uses for
    them, ``rows`` ``[P, N]`` the queries computed, ``full`` the pairs whose score was computed with every
    bit, ``planes`` the lane cycles per pair (bit-serial policies: for the cycle model) and the counts."""

    kept: np.ndarray
    score: np.ndarray
    rows: np.ndarray
    full: int
    counts: energy.Counts
    planes: np.ndarray | None = None


def _finish(cfg: EngineConfig, problems: golden.Problems, counts: energy.Counts, kept: np.ndarray,
            rows: np.ndarray) -> None:
    """The part every policy but SpAtten shares: each query read once, the back end over the kept pairs,
    K and V of every valid token from DRAM."""
    energy.queries(cfg, counts, int(rows.sum()))
    energy.back_end(cfg, counts, int(kept.sum()), int(rows.sum()))
    energy.off_chip(cfg, counts, cfg.k_bits, int(problems.valid_len.sum()))


@dataclass(frozen=True)
class Dense:
    """Every visible pair: the engine in dense mode (``bit_serial``) or a bit-parallel unit."""

    bit_serial: bool = True

    @property
    def name(self) -> str:
        return "dense" if self.bit_serial else "dense, bit-parallel"

    def attend(self, cfg: EngineConfig, layer: int, problems: golden.Problems, heads: int,
               state: dict[str, Any]) -> Attended:
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        pairs = int(visible.sum())
        rows = problems.query_valid()
        counts = self.counts(cfg, pairs, int(rows.sum()), int(problems.valid_len.sum()))
        planes = np.where(visible, cfg.k_bits, 0) if self.bit_serial else None
        return Attended(visible, score, rows, pairs, counts, planes)

    def counts(self, cfg: EngineConfig, pairs: int, queries: int, tokens: int) -> energy.Counts:
        """The operations of ``pairs`` visible pairs in ``queries`` queries over ``tokens`` valid tokens:
        they depend on nothing else."""
        counts = energy.Counts()
        if self.bit_serial:
            energy.bit_serial_qk(cfg, counts, pairs * cfg.k_bits, 0, queries)
        else:
            energy.bit_parallel_qk(cfg, counts, pairs, cfg.q_bits, cfg.k_bits)
        energy.queries(cfg, counts, queries)
        energy.back_end(cfg, counts, pairs, queries)
        energy.off_chip(cfg, counts, cfg.k_bits, tokens)
        return counts

    def observe(self, layer: int, probs: np.ndarray, context: np.ndarray, state: dict[str, Any]) -> None:
        """Nothing to remember between layers."""


@dataclass(frozen=True)
class Leopard:
    """The engine with early termination under ``cfg`` (its ``skip_zero_planes`` included)."""

    cfg: EngineConfig
    name: str = "leopard"

    def attend(self, cfg: EngineConfig, layer: int, problems: golden.Problems, heads: int,
               state: dict[str, Any]) -> Attended:
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        kept, planes = golden.decisions(self.cfg, problems, visible)
        steps = golden.step_ends(self.cfg, problems.k).sum(axis=-1)[:, None, :]
        counts = energy.Counts()
        rows = problems.query_valid()
        total = int(planes.sum())
        energy.bit_serial_qk(cfg, counts, total, total, int(rows.sum()))
        _finish(cfg, problems, counts, kept, rows)
        full = int((visible & (planes == steps)).sum())
        return Attended(kept, score, rows, full, counts, planes)

    def observe(self, layer: int, probs: np.ndarray, context: np.ndarray, state: dict[str, Any]) -> None:
        """Nothing to remember between layers."""


def top_k_mask(score: np.ndarray, visible: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``[P, N, N]``: the ``k[p]`` largest visible scores of each query (all of them when fewer), ties
    broken towards the lower key index."""
    ordered = np.where(visible, -score, np.iinfo(np.int64).max)
    order = np.argsort(ordered, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(score.shape[-1])[None, None, :], axis=-1)
    return visible & (rank < np.asarray(k)[:, None, None])


@dataclass(frozen=True)
class TopK:
    """The ``k[layer, head]`` largest scores of each query, every score computed bit-parallel first; the
    selection costs two compares per score (quickselect's expected count)."""

    k: np.ndarray
    name: str = "top-k"

    def attend(self, cfg: EngineConfig, layer: int, problems: golden.Problems, heads: int,
               state: dict[str, Any]) -> Attended:
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        kept = top_k_mask(score, visible, np.tile(self.k[layer], problems.count // heads))
        counts = energy.Counts()
        pairs = int(visible.sum())
        energy.bit_parallel_qk(cfg, counts, pairs, cfg.q_bits, cfg.k_bits)
        energy.compares(cfg, counts, "front", 2 * pairs)
        rows = problems.query_valid()
        _finish(cfg, problems, counts, kept, rows)
        return Attended(kept, score, rows, pairs, counts)

    def observe(self, layer: int, probs: np.ndarray, context: np.ndarray, state: dict[str, Any]) -> None:
        """Nothing to remember between layers."""


def low_bits(x: np.ndarray, bits: int, width: int) -> np.ndarray:
    """``x`` (``width``-bit integers) rounded to ``bits`` bits: ``clip(⌊x / 2^s + ½⌋, ±(2^(bits−1) − 1))``
    with ``s = width − bits``."""
    shift = width - bits
    top = (1 << (bits - 1)) - 1
    x = x.astype(np.int64)
    rounded = (x + (1 << (shift - 1))) >> shift if shift > 0 else x
    return np.clip(rounded, -top, top)


def score_scale_log2(problems: golden.Problems) -> np.ndarray:
    """``[P]`` ``scale·log2(e)`` of each problem's softmax scale register."""
    return problems.scale_mantissa.astype(np.float64) * 2.0 ** -problems.scale_shift.astype(np.float64)


def sanger_mask(cfg: EngineConfig, problems: golden.Problems, bits: int, threshold: float) -> np.ndarray:
    """``[P, N, N]``: visible pairs whose predicted probability reaches ``threshold``: scores of ``q`` and
    ``k`` rounded to ``bits`` bits, ``p̂_j = 2^(c·(ŝ_j − max ŝ)) / Σ`` over the visible keys in float64,
    ``c = scale·log2(e)·2^(q_bits + k_bits − 2·bits)``."""
    visible = problems.visible()
    q = low_bits(problems.q, bits, cfg.q_bits)
    k = low_bits(problems.k, bits, cfg.k_bits)
    predicted = golden.scores(q, k).astype(np.float64)
    unit = score_scale_log2(problems) * 2.0 ** (cfg.q_bits + cfg.k_bits - 2 * bits)
    masked = np.where(visible, predicted, -np.inf)
    top = np.where(visible.any(axis=-1, keepdims=True), masked.max(axis=-1, keepdims=True), 0.0)
    weights = np.where(visible, np.exp2(unit[:, None, None] * (masked - top)), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    probability = weights / np.where(total > 0, total, 1.0)
    return visible & (probability >= threshold)


@dataclass(frozen=True)
class Sanger:
    """A ``bits``-bit predicted score for every pair (bit-parallel), its softmax (a max compare, an
    exponent, a sum and a threshold compare per pair), then the kept pairs bit-parallel in full."""

    threshold: float
    bits: int = 4
    name: str = "Sanger"

    def attend(self, cfg: EngineConfig, layer: int, problems: golden.Problems, heads: int,
               state: dict[str, Any]) -> Attended:
        visible = problems.visible()
        score = np.where(visible, golden.scores(problems.q, problems.k), 0)
        kept = sanger_mask(cfg, problems, self.bits, self.threshold)
        counts = energy.Counts()
        pairs, full = int(visible.sum()), int(kept.sum())
        energy.bit_parallel_qk(cfg, counts, pairs, self.bits, self.bits)
        energy.compares(cfg, counts, "front", pairs)
        energy.exponent_lookups(cfg, counts, "front", pairs)
        counts.adds("front", energy.exponent_bits(cfg) + clog2(cfg.max_seq_len), pairs)
        energy.compares(cfg, counts, "front", pairs)
        energy.bit_parallel_qk(cfg, counts, full, cfg.q_bits, cfg.k_bits)
        rows = problems.query_valid()
        _finish(cfg, problems, counts, kept, rows)
        return Attended(kept, score, rows, full, counts)

    def observe(self, layer: int, probs: np.ndarray, context: np.ndarray, state: dict[str, Any]) -> None:
        """Nothing to remember between layers."""


def keep_fraction(final: float, layer: int, layers: int) -> float:
    """SpAtten's schedule: everything kept in layer 0, falling linearly to ``final`` in the last layer."""
    return 1.0 - (1.0 - final) * layer / max(layers - 1, 1)


def keep_count(fraction: float, count: np.ndarray) -> np.ndarray:
    """``max(⌈fraction·count⌉, 1)``, the product's rounding error (``1e-9``) not rounding it up."""
    return np.maximum(np.ceil(fraction * np.asarray(count) - 1e-9), 1).astype(np.int64)


def cascade(alive: np.ndarray, importance: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``[B, M]``: the ``keep[b]`` most important of the alive items (ties: the lower index); an item
    once pruned stays pruned."""
    ordered = np.where(alive, -importance, np.inf)
    order = np.argsort(ordered, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(alive.shape[-1])[None, :], axis=-1)
    return alive & (rank < keep[:, None])


@dataclass(frozen=True)
class SpAtten:
    """Cascade token and head pruning with progressive quantization (see the module docstring).

    Before layer ``l > 0``, each sentence keeps ``⌈f_l·n⌉`` of its ``n`` tokens and ``⌈g_l·H⌉`` heads,
    ``f_l``, ``g_l`` from ``keep_fraction`` of ``token_keep`` and ``head_keep``: the alive ones with the
    largest importance so far (a token: the attention probability it received, summed over heads,
    queries and layers; a head: the magnitude of its outputs). A pruned token is no key and no query
    any more (its attention output is zero; the encoder still carries its hidden state); a pruned head
    outputs zero. ``state`` holds ``tokens``, ``heads`` (alive) and their importance.
    """

    token_keep: float
    head_keep: float
    pq_threshold: float
    layers: int
    name: str = "SpAtten"

    def _prune(self, layer: int, problems: golden.Problems, heads: int, state: dict[str, Any]) -> None:
        valid_len = problems.valid_len[::heads]
        if "tokens" not in state:
            state["tokens"] = np.arange(problems.length)[None, :] < valid_len[:, None]
            state["heads"] = np.ones((len(valid_len), heads), bool)
            state["token_importance"] = np.zeros(state["tokens"].shape)
            state["head_importance"] = np.zeros(state["heads"].shape)
            return
        tokens = keep_count(keep_fraction(self.token_keep, layer, self.layers), valid_len)
        state["tokens"] = cascade(state["tokens"], state["token_importance"], tokens)
        kept_heads = keep_count(keep_fraction(self.head_keep, layer, self.layers),
                                np.full(len(valid_len), heads))
        state["heads"] = cascade(state["heads"], state["head_importance"], kept_heads)

    def attend(self, cfg: EngineConfig, layer: int, problems: golden.Problems, heads: int,
               state: dict[str, Any]) -> Attended:
        self._prune(layer, problems, heads, state)
        tokens = np.repeat(state["tokens"], heads, axis=0) & state["heads"].reshape(-1)[:, None]
        live = problems.visible() & tokens[:, :, None] & tokens[:, None, :]
        half = cfg.k_bits // 2
        coarse = np.where(live, golden.scores(problems.q, (problems.k.astype(np.int64) >> half) << half), 0)
        coarse_probs, _ = golden.softmax(cfg, problems, coarse, live)
        rows = live.any(axis=-1)
        flat = rows & (coarse_probs.max(axis=-1) <= self.pq_threshold * 2.0 ** cfg.prob_frac_bits)
        score = np.where(flat[..., None], np.where(live, golden.scores(problems.q, problems.k), 0), coarse)
        counts = energy.Counts()
        pairs = int(live.sum())
        recomputed = int((live & flat[..., None]).sum())
        energy.queries(cfg, counts, int(rows.sum()))
        energy.bit_parallel_qk(cfg, counts, pairs, cfg.q_bits, cfg.k_bits - half)
        energy.compares(cfg, counts, "front", pairs)
        energy.exponent_lookups(cfg, counts, "front", pairs)
        counts.adds("front", energy.exponent_bits(cfg) + clog2(cfg.max_seq_len), pairs)
        energy.compares(cfg, counts, "front", int(rows.sum()))
        energy.bit_parallel_qk(cfg, counts, recomputed, cfg.q_bits, half)
        counts.adds("front", cfg.score_bits, recomputed)
        if layer > 0:
            energy.compares(cfg, counts, "front", 2 * int(state["tokens"].sum()))
        energy.back_end(cfg, counts, pairs, int(rows.sum()), exponents=recomputed)
        counts.adds("back", cfg.prob_frac_bits + clog2(cfg.max_seq_len), pairs)
        counts.adds("back", energy.accumulator_bits(cfg), int(rows.sum()) * cfg.head_dim)
        fetched = tokens.sum(axis=-1)
        energy.off_chip(cfg, counts, cfg.k_bits - half, int(fetched.sum()))
        counts.fetches(cfg.head_dim * half, int(fetched[flat.any(axis=-1)].sum()))
        return Attended(live, score, rows, recomputed, counts)

    def observe(self, layer: int, probs: np.ndarray, context: np.ndarray, state: dict[str, Any]) -> None:
        """Add this layer's importance: ``probs`` ``[B, H, N, N]`` (fixed point), ``context``
        ``[B, H, N, Dh]`` (float)."""
        state["token_importance"] += probs.sum(axis=(1, 2), dtype=np.float64)
        state["head_importance"] += np.abs(context).sum(axis=(2, 3), dtype=np.float64)


Policy = Dense | Leopard | TopK | Sanger | SpAtten

