"""Running attention problems through the front-end bench, and checking what the RTL did against the
golden model (every decided key, score and plane count) and the cycle model (stall-free runs)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.model import cycles, golden

from .frontend_bench import FrontEndBench, Job, JobResult


@dataclass
class ProblemRun:
    """The jobs one problem was split into, and what the RTL returned for each."""

    problem: int
    dense: bool
    jobs: list[tuple[Job, JobResult]]


async def run_problem(
    bench: FrontEndBench, problems: golden.Problems, p: int, *, dense: bool, batches: int = 1
) -> ProblemRun:
    """Load problem ``p``'s keys, program its threshold slot, run its queries as ``batches`` jobs."""
    cfg = bench.cfg
    n = int(problems.valid_len[p])
    slot = p % cfg.threshold_regs
    await bench.load_keys(problems.k[p, :n])
    scale = (int(problems.scale_mantissa[p]) | int(problems.scale_shift[p]) << cfg.scale_mantissa_bits)
    await bench.program(slot, int(problems.threshold[p]), scale)
    bounds = np.linspace(0, n, min(batches, n) + 1).round().astype(int)
    jobs = []
    for first, end in itertools.pairwise(bounds):
        job = Job(
            queries=problems.q[p, first:end], keys=n, first=int(first),
            causal=problems.causal, dense=dense, slot=slot,
        )
        jobs.append((job, await bench.run(job)))
    return ProblemRun(p, dense, jobs)


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
    run: ProblemRun, expected: golden.GoldenResult, cfg: EngineConfig, comparison: Comparison,
    *, check_cycles: bool,
) -> None:
    """Add to ``comparison`` every difference between ``run`` and the golden ``expected`` (all problems)."""
    p = run.problem
    visible, planes, kept, score = (
        expected.visible[p], expected.planes[p], expected.kept[p], expected.scores[p],
    )
    for job, result in run.jobs:
        rows = range(job.first, job.first + len(job.queries))
        want_status = {
            (i, j): (int(planes[i, j]), bool(kept[i, j])) for i in rows for j in np.flatnonzero(visible[i])
        }
        want_kept = {where: int(score[where]) for where, (_, keep) in want_status.items() if keep}
        mode = "dense" if run.dense else "early termination"
        tag = f"problem {p} {mode} queries {rows.start}..{rows.stop - 1}"
        if result.duplicates:
            comparison.note(f"{tag}: {result.duplicates} keys reported twice", result.duplicates)
        if result.status:
            _compare_maps(comparison, tag, "planes/kept", want_status, result.status, values=2)
        _compare_maps(comparison, tag, "score", want_kept, result.kept, values=1)
        want_planes = sum(p for p, _ in want_status.values())
        for name, got, want in (
            ("KEPT", result.kept_count, len(want_kept)),
            ("PLANES", result.planes_count, want_planes),
            ("QUERIES_DONE", result.queries_done, len(rows)),
            ("query completions", result.completed, len(rows)),
        ):
            if got != want:
                comparison.note(f"{tag}: {name} {got}, expected {want}")
        model = cycles.frontend_job(
            [planes[i][visible[i]].tolist() for i in rows], lanes=cfg.lanes, in_flight=cfg.queries_in_flight
        ).cycles
        comparison.cycles += result.cycles
        comparison.expected_cycles += model
        if check_cycles and result.cycles != model:
            comparison.note(f"{tag}: {result.cycles} cycles, the cycle model says {model}")


def _compare_maps(
    comparison: Comparison, tag: str, what: str, want: dict, got: dict, *, values: int
) -> None:
    for where in sorted(set(want) | set(got)):
        if where not in got:
            comparison.note(f"{tag}: key {where} missing ({what} expected {want[where]})", values)
        elif where not in want:
            comparison.note(f"{tag}: unexpected key {where} ({what} {got[where]})", values)
        elif got[where] != want[where]:
            differing = sum(a != b for a, b in zip(_tuple(got[where]), _tuple(want[where]), strict=True))
            comparison.note(f"{tag}: key {where} {what} {got[where]}, expected {want[where]}", differing)


def _tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)
