"""The report keys of BRIEF §5, from golden results and cycle counts, and their readable table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model.reference import compiled_cycles, cycles, golden

ProblemCycles = dict[str, list[int]]
"""Cycles of every problem's job, per mode (``early_termination``, ``dense``)."""

MODES = (("early_termination", False), ("dense", True))

SUM_KEYS = ("pairs", "kept", "planes", "planes_kept", "back_ideal", "tokens")


def problem_sums(cfg: EngineConfig, visible: np.ndarray, kept: np.ndarray, planes: np.ndarray,
                 valid_len: np.ndarray) -> dict[str, np.ndarray]:
    """``[P]`` integer sums per problem of an early-termination run: visible and kept pairs, planes over
    visible and over kept pairs, the back end's ideal cycles ``Σ max(n·c, 1)`` over the valid queries
    (``n`` kept keys, ``c = v_groups``), and tokens loaded."""
    planes = np.where(visible, planes, 0)
    counts = kept.sum(axis=-1, dtype=np.int64)
    valid = np.arange(visible.shape[1])[None, :] < valid_len[:, None]
    return {
        "pairs": visible.sum(axis=(1, 2), dtype=np.int64),
        "kept": counts.sum(axis=1),
        "planes": planes.sum(axis=(1, 2), dtype=np.int64),
        "planes_kept": np.where(kept, planes, 0).sum(axis=(1, 2), dtype=np.int64),
        "back_ideal": np.where(valid, np.maximum(counts * cfg.v_groups, 1), 0).sum(axis=1),
        "tokens": np.asarray(valid_len, np.int64),
    }


class Totals:
    """The report's figures accumulated over problems in trace order, a block at a time: integer sums,
    the whole head's ideal cycles (a float sum, added problem by problem so that any blocking gives the
    same bits) and every problem's cycles."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.sums = dict.fromkeys(SUM_KEYS, 0)
        self.problems = 0
        self.ideal_head = 0.0
        self.front: ProblemCycles = {mode: [] for mode, _ in MODES}
        self.head: ProblemCycles = {mode: [] for mode, _ in MODES}

    def add(self, sums: dict[str, np.ndarray], front: ProblemCycles, head: ProblemCycles) -> None:
        """Add consecutive problems: their ``problem_sums`` and their front-end and whole-head cycles."""
        self.problems += len(sums["pairs"])
        for key in SUM_KEYS:
            self.sums[key] += int(sums[key].sum())
        for planes, back in zip(sums["planes"].tolist(), sums["back_ideal"].tolist(), strict=True):
            self.ideal_head += max(float(planes) / self.cfg.lanes, float(back))
        for mode, _ in MODES:
            self.front[mode] += front[mode]
            self.head[mode] += head[mode]

    def figures(self, *, mismatches: int | None = None) -> dict[str, Any]:
        """The report keys of BRIEF §5 (``mismatches`` is added by ``leopard sim``)."""
        sums, pairs, kept = self.sums, self.sums["pairs"], self.sums["kept"]

        def mean(total: int, count: int) -> float | None:
            return round(total / count, 6) if count else None

        figures: dict[str, Any] = {
            "problems": self.problems,
            "pairs": pairs,
            "pruned_fraction": round(1.0 - kept / pairs, 6),
            "mean_planes": mean(sums["planes"], pairs),
            "mean_planes_pruned": mean(sums["planes"] - sums["planes_kept"], pairs - kept),
            "mean_planes_kept": mean(sums["planes_kept"], kept),
            **cycle_figures(sum(self.front["early_termination"]), sum(self.front["dense"]),
                            float(sums["planes"]) / self.cfg.lanes),
            "cycles_load": sums["tokens"] * self.cfg.k_bits,
            **cycle_figures(sum(self.head["early_termination"]), sum(self.head["dense"]), self.ideal_head,
                            suffix="_head"),
            "problem_cycles": {"front": self.front, "head": self.head},
        }
        if mismatches is not None:
            figures["mismatches"] = mismatches
        return figures


def cycle_figures(
    early: int, dense: int, ideal: float, *, suffix: str = ""
) -> dict[str, Any]:
    """``cycles{suffix}``, ``speedup{suffix}`` and ``efficiency{suffix}`` from measured or modelled
    counts (``suffix`` is ``""`` for the front end, ``"_head"`` for the whole head)."""
    return {
        f"cycles{suffix}": {"early_termination": early, "dense": dense, "ideal": round(ideal, 6)},
        f"speedup{suffix}": round(dense / early, 6),
        f"efficiency{suffix}": round(ideal / early, 6),
    }


def _by_length(problems: golden.Problems) -> Iterator[tuple[np.ndarray, golden.Problems]]:
    """The problems grouped by token count, each group cut to its own length (no padding left)."""
    for length in np.unique(problems.valid_len):
        pick = np.flatnonzero(problems.valid_len == length)
        yield pick, problems.take(pick, int(length))


def modelled(cfg: EngineConfig, problems: golden.Problems
             ) -> tuple[dict[str, np.ndarray], ProblemCycles, ProblemCycles]:
    """``problem_sums`` of the early-termination run and the cycle model's front-end and whole-head
    cycles of every problem, both modes: the golden model's decisions and planes on each group of equal
    length, the compiled cycle model (``compiled_cycles``)."""
    count = problems.count
    sums = {key: np.zeros(count, np.int64) for key in SUM_KEYS}
    front = {mode: np.zeros(count, np.int64) for mode, _ in MODES}
    head = {mode: np.zeros(count, np.int64) for mode, _ in MODES}
    for pick, group in _by_length(problems):
        visible = group.visible()
        for mode, dense in MODES:
            kept, planes = golden.decisions(cfg, group, visible, dense=dense)
            if not dense:
                for key, value in problem_sums(cfg, visible, kept, planes, group.valid_len).items():
                    sums[key][pick] = value
            front[mode][pick] = compiled_cycles.problem_cycles(cfg, planes, visible, group.valid_len)
            head[mode][pick] = compiled_cycles.problem_cycles(cfg, planes, visible, group.valid_len, kept)
    return (sums, {mode: values.tolist() for mode, values in front.items()},
            {mode: values.tolist() for mode, values in head.items()})


def reference(cfg: EngineConfig, problems: golden.Problems
              ) -> tuple[dict[str, np.ndarray], ProblemCycles, ProblemCycles]:
    """What ``modelled`` gives, the straightforward way: each problem on its own through the whole golden
    model (``golden.run``) and the readable cycle model (``cycles.job_cycles``)."""
    parts: list[dict[str, np.ndarray]] = []
    front: ProblemCycles = {mode: [] for mode, _ in MODES}
    head: ProblemCycles = {mode: [] for mode, _ in MODES}
    for p in range(problems.count):
        one = problems.take(slice(p, p + 1))
        for mode, dense in MODES:
            result = golden.run(cfg, one, dense=dense)
            if not dense:
                parts.append(problem_sums(cfg, result.visible, result.kept, result.planes, one.valid_len))
            rows = cycles.planes_by_query(result.planes[0], result.visible[0], int(one.valid_len[0]))
            front[mode].append(cycles.job_cycles(cfg, rows).cycles)
            kept = result.kept[0].sum(axis=-1)[: int(one.valid_len[0])].tolist()
            head[mode].append(cycles.job_cycles(cfg, rows, kept).cycles)
    return {key: np.concatenate([part[key] for part in parts]) for key in SUM_KEYS}, front, head


def golden_report(cfg: EngineConfig, problems: golden.Problems) -> dict[str, Any]:
    """What ``leopard golden`` writes for problems held in memory: statistics and the modelled
    front-end and whole-head cycles."""
    totals = Totals(cfg)
    totals.add(*modelled(cfg, problems))
    return totals.figures()


def report(
    cfg: EngineConfig,
    early: golden.GoldenResult,
    valid_len: np.ndarray,
    front: ProblemCycles,
    head: ProblemCycles,
    *,
    mismatches: int | None = None,
) -> dict[str, Any]:
    """The report keys of BRIEF §5 from the golden model's early-termination results and per-problem
    front-end and whole-head cycles, modelled or measured (kept under ``problem_cycles``);
    ``mismatches`` is added by ``leopard sim``."""
    totals = Totals(cfg)
    totals.add(problem_sums(cfg, early.visible, early.kept, early.planes, valid_len), front, head)
    return totals.figures(mismatches=mismatches)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """A two-column text table of the headline figures (nested ``cycles`` flattened)."""
    rows: list[tuple[str, str]] = []
    for key, value in report.items():
        if key == "problem_cycles":
            continue
        if isinstance(value, dict):
            rows.extend((f"{key}.{sub}", _fmt(item)) for sub, item in value.items())
        else:
            rows.append((key, _fmt(value)))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)
