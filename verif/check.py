"""Checking what the RTL did against the golden model (every decided key, score, plane count,
probability and output) and the cycle model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.ports import BITPARALLEL_TOPS, KEPT_STREAM_TOPS
from leopard.model.reference import cycles, golden
from leopard.sw.job import Job, JobResult


@dataclass
class ProblemRun:
    """The jobs one problem was split into, and what the RTL returned for each."""

    problem: int
    dense: bool
    jobs: list[tuple[Job, JobResult]]


@dataclass
class Comparison:
    """Differences between RTL and golden model; ``mismatches`` counts differing values."""

    mismatches: int = 0
    messages: list[str] = field(default_factory=list)
    cycles: int = 0
    expected_cycles: int = 0

    def note(self, message: str, count: int = 1) -> None:
        self.mismatches += count
        if len(self.messages) < 20:
            self.messages.append(message)


def compare(
    run: ProblemRun, expected: golden.GoldenResult, cfg: EngineConfig, top: str,
    comparison: Comparison, *, check_cycles: bool,
) -> None:
    """Add to ``comparison`` every difference between ``run`` and the golden ``expected``."""
    p = run.problem
    visible, planes, kept = expected.visible[p], expected.planes[p], expected.kept[p]
    for job, result in run.jobs:
        rows = range(job.first, job.first + len(job.queries))
        mode = "dense" if run.dense else "early termination"
        tag = f"problem {p} {mode} queries {rows.start}..{rows.stop - 1}"
        want_status = {
            (i, j): (cfg.k_bits if top in BITPARALLEL_TOPS else int(planes[i, j]), bool(kept[i, j]))
            for i in rows for j in np.flatnonzero(visible[i])
        }
        kept_keys = [where for where, (_, keep) in want_status.items() if keep]
        if result.duplicates:
            comparison.note(f"{tag}: {result.duplicates} keys or queries reported twice", result.duplicates)
        if cfg.status_stream:
            _compare_maps(comparison, tag, "planes/kept", want_status, result.status)
        counters = [
            ("KEPT", result.kept_count, len(kept_keys)),
            ("PLANES", result.planes_count, sum(planes for planes, _ in want_status.values())),
            ("QUERIES_DONE", result.queries_done, len(rows)),
        ]
        plan = [planes[i][visible[i]].tolist() for i in rows]
        if top in KEPT_STREAM_TOPS:
            scores = {where: int(expected.scores[p][where]) for where in kept_keys}
            _compare_maps(comparison, tag, "score", scores, result.kept)
            counters.append(("query completions", result.completed, len(rows)))
            if top in BITPARALLEL_TOPS:
                split = top != "bitparallel"
                model = cycles.bitparallel_cycles(cfg, [len(keys) for keys in plan], split=split)
            else:
                model = cycles.job_cycles(cfg, plan)
        else:
            probs = {where: int(expected.probs[p][where]) for where in kept_keys}
            _compare_maps(comparison, tag, "probability", probs, result.probs)
            outputs = {i: expected.out[p, i].tolist() for i in rows}
            _compare_maps(comparison, tag, "output", outputs, result.outputs)
            _compare_maps(comparison, tag, "kept count",
                          {i: int(kept[i].sum()) for i in rows}, result.packet_kept)
            if result.order != sorted(result.order):
                comparison.note(f"{tag}: packets out of order {result.order}")
            model = cycles.job_cycles(cfg, plan, [int(kept[i].sum()) for i in rows])
            if check_cycles:
                timeline = dict(zip(rows, model.query_done, strict=True))
                _compare_maps(comparison, tag, "packet cycle", timeline, result.packet_cycle)
        for name, got, want in counters:
            if got != want:
                comparison.note(f"{tag}: {name} {got}, expected {want}")
        comparison.cycles += result.cycles
        comparison.expected_cycles += model.cycles
        if check_cycles and result.cycles != model.cycles:
            comparison.note(f"{tag}: {result.cycles} cycles, the cycle model says {model.cycles}")


def _compare_maps(comparison: Comparison, tag: str, what: str, want: dict, got: dict) -> None:
    """One mismatch per differing value (a missing or extra entry counts all its values)."""
    for where in sorted(set(want) | set(got)):
        if where not in got:
            comparison.note(f"{tag}: {where} missing ({what} expected {want[where]})", _size(want[where]))
        elif where not in want:
            comparison.note(f"{tag}: unexpected {where} ({what} {got[where]})", _size(got[where]))
        elif got[where] != want[where]:
            differing = sum(a != b for a, b in zip(_flat(got[where]), _flat(want[where]), strict=True))
            comparison.note(f"{tag}: {where} {what} {got[where]}, expected {want[where]}", differing)


def _flat(value: object) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _size(value: object) -> int:
    return len(_flat(value))
