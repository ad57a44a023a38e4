"""A keep policy (``model/reference/policies.py``) as the attention core of the float encoder: each
layer's ``q``, ``k``, ``v`` quantized as the engine sees them (``HardwareCore.problems``), the policy's
kept pairs and scores through the engine's fixed-point softmax and ``p·v`` (``golden.softmax``), the
output dequantized back to float, and everything the comparison reports tallied across batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from leopard.model.reference import compiled_cycles, energy, golden
from leopard.model.reference.policies import Attended, Policy
from leopard.model.training.quantize import HardwareCore


@dataclass
class Tally:
    """What a policy did over every problem it saw: pair counts, priced operations and, for bit-serial
    policies, the engine's exact cycles (each job alone, K and V resident)."""

    problems: int = 0
    pairs: int = 0
    kept: int = 0
    full: int = 0
    queries: int = 0
    tokens: int = 0
    counts: energy.Counts = field(default_factory=energy.Counts)
    cycles: int = 0
    cycles_head: int = 0
    kept_per_head: np.ndarray | None = None
    rows_per_head: np.ndarray | None = None

    def add_head_counts(self, layer: int, layers: int, kept: np.ndarray, rows: np.ndarray) -> None:
        """Add one layer's ``[H]`` kept pairs and computed queries."""
        if self.kept_per_head is None or self.rows_per_head is None:
            self.kept_per_head = np.zeros((layers, len(kept)), np.int64)
            self.rows_per_head = np.zeros((layers, len(kept)), np.int64)
        self.kept_per_head[layer] += kept
        self.rows_per_head[layer] += rows


@dataclass
class PolicyCore:
    """One batch's attention core: ``engine`` quantizes (its own decisions are not used), ``policy``
    decides; ``tally`` is shared by the batches of one run, ``state`` is this batch's."""

    engine: HardwareCore
    policy: Policy
    tally: Tally
    layers: int
    state: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        cfg = self.engine.cfg
        batch, heads, length, dim = q.shape
        problems = self.engine.problems(layer, q, k, v, valid)
        attended = self.policy.attend(cfg, layer, problems, heads, self.state)
        probs, out = golden.softmax(cfg, problems, attended.score, attended.kept)
        out = out.reshape(batch, heads, length, dim)
        result = self.engine.to_float(layer, out, q)
        self.policy.observe(layer, probs.reshape(batch, heads, length, length), result.numpy(), self.state)
        self._tally(layer, problems, attended, heads)
        return result

    def _tally(self, layer: int, problems: golden.Problems, attended: Attended, heads: int) -> None:
        tally = self.tally
        visible = problems.visible()
        tally.problems += problems.count
        tally.pairs += int(visible.sum())
        tally.kept += int(attended.kept.sum())
        tally.full += attended.full
        tally.queries += int(attended.rows.sum())
        tally.tokens += int(problems.valid_len.sum())
        tally.counts += attended.counts
        per_problem = attended.kept.sum(axis=(1, 2)).reshape(-1, heads).sum(axis=0)
        rows = attended.rows.sum(axis=1).reshape(-1, heads).sum(axis=0)
        tally.add_head_counts(layer, self.layers, per_problem, rows)
        if attended.planes is not None:
            cfg = self.engine.cfg
            tally.cycles += int(compiled_cycles.problem_cycles(
                cfg, attended.planes, visible, problems.valid_len).sum())
            tally.cycles_head += int(compiled_cycles.problem_cycles(
                cfg, attended.planes, visible, problems.valid_len, attended.kept).sum())
