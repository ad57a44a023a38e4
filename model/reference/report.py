"""The report keys of BRIEF §5, from golden results and cycle counts, and their readable table."""

from __future__ import annotations

from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model.reference import cycles, golden


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if values.size else None


def pruning_stats(result: golden.GoldenResult) -> dict[str, Any]:
    """Pruning and plane statistics over the visible (valid, causally allowed) query–key pairs."""
    planes = result.planes[result.visible]
    kept = result.kept[result.visible]
    return {
        "pairs": int(planes.size),
        "pruned_fraction": round(1.0 - float(kept.mean()), 6),
        "mean_planes": _mean(planes),
        "mean_planes_pruned": _mean(planes[~kept]),
        "mean_planes_kept": _mean(planes[kept]),
    }


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


ProblemCycles = dict[str, list[int]]
"""Cycles of every problem's job, per mode (``early_termination``, ``dense``)."""


def modelled_cycles(cfg: EngineConfig, problems: golden.Problems) -> dict[str, ProblemCycles]:
    """The cycle model's per-problem cycles: ``{"front": {mode: [...]}, "head": {mode: [...]}}``."""
    figures: dict[str, ProblemCycles] = {"front": {}, "head": {}}
    for mode, dense in (("early_termination", False), ("dense", True)):
        result = golden.run(cfg, problems, dense=dense)
        front = cycles.frontend_cycles(cfg, result.planes, result.visible, problems.valid_len)
        head = cycles.head_cycles(cfg, result.planes, result.visible, result.kept, problems.valid_len)
        figures["front"][mode] = [job.cycles for job in front]
        figures["head"][mode] = [job.cycles for job in head]
    return figures


def golden_report(cfg: EngineConfig, problems: golden.Problems) -> dict[str, Any]:
    """What ``leopard golden`` writes: statistics and the modelled front-end and whole-head cycles."""
    modelled = modelled_cycles(cfg, problems)
    return report(cfg, problems, modelled["front"], modelled["head"])


def report(
    cfg: EngineConfig,
    problems: golden.Problems,
    front: ProblemCycles,
    head: ProblemCycles,
    *,
    mismatches: int | None = None,
) -> dict[str, Any]:
    """The report keys of BRIEF §5 from per-problem front-end and whole-head cycles, modelled or
    measured (kept under ``problem_cycles``); ``mismatches`` is added by ``leopard sim``."""
    early = golden.run(cfg, problems)
    figures: dict[str, Any] = {
        "problems": problems.count,
        **pruning_stats(early),
        **cycle_figures(
            sum(front["early_termination"]), sum(front["dense"]),
            cycles.ideal_cycles(early.planes, early.visible, cfg.lanes),
        ),
        "cycles_load": cycles.load_cycles(problems.valid_len, cfg.k_bits),
        **cycle_figures(
            sum(head["early_termination"]), sum(head["dense"]),
            cycles.ideal_head_cycles(cfg, early.planes, early.visible, early.kept, problems.valid_len),
            suffix="_head",
        ),
        "problem_cycles": {"front": front, "head": head},
    }
    if mismatches is not None:
        figures["mismatches"] = mismatches
    return figures


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
