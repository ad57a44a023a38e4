"""The report keys of BRIEF §5, from golden results and cycle counts, and their readable table."""

from __future__ import annotations

from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model import cycles, golden


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


def cycle_figures(early: int, dense: int, ideal: float, load: int) -> dict[str, Any]:
    """``cycles``, ``cycles_load``, ``speedup`` and ``efficiency`` from measured or modelled counts."""
    return {
        "cycles": {"early_termination": early, "dense": dense, "ideal": round(ideal, 6)},
        "cycles_load": load,
        "speedup": round(dense / early, 6),
        "efficiency": round(ideal / early, 6),
    }


def golden_report(cfg: EngineConfig, problems: golden.Problems) -> dict[str, Any]:
    """What ``leopard golden`` writes: statistics and the modelled front-end cycles."""
    early = golden.run(cfg, problems)
    dense = golden.run(cfg, problems, dense=True)
    modelled = {
        mode: sum(job.cycles for job in cycles.frontend_cycles(
            cfg, result.planes, result.visible, problems.valid_len
        ))
        for mode, result in (("early_termination", early), ("dense", dense))
    }
    return _report(cfg, problems, early, modelled)


def sim_report(
    cfg: EngineConfig, problems: golden.Problems, measured: dict[str, int], mismatches: int
) -> dict[str, Any]:
    """What ``leopard sim`` writes: the golden report's keys with the RTL's measured cycles, plus
    ``mismatches`` (values differing between RTL and golden model)."""
    early = golden.run(cfg, problems)
    return {**_report(cfg, problems, early, measured), "mismatches": mismatches}


def _report(
    cfg: EngineConfig, problems: golden.Problems, early: golden.GoldenResult, front: dict[str, int]
) -> dict[str, Any]:
    return {
        "problems": problems.count,
        **pruning_stats(early),
        **cycle_figures(
            front["early_termination"],
            front["dense"],
            cycles.ideal_cycles(early.planes, early.visible, cfg.lanes),
            cycles.load_cycles(problems.valid_len, cfg.k_bits),
        ),
    }


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
        if isinstance(value, dict):
            rows.extend((f"{key}.{sub}", _fmt(item)) for sub, item in value.items())
        else:
            rows.append((key, _fmt(value)))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)
