"""A workload as a trace-player program (``verif/player.py``), and the player's printed lines back into
job results, checked against the golden and cycle models.

A workload is problems of one trace in given modes: per problem and mode, its keys (and values) are
pushed, its slot's threshold and scale written, then each of its jobs (``batches`` per problem): the job
registers, ``CTRL.start``, its queries, a wait until the top is idle, and the reads of ``STATUS`` and
the counters. The same order as a host driver would use (``sw/driver.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.fixedpoint import ScaleRegister
from leopard.hw.packing import decode, encode
from leopard.hw.ports import top_signature
from leopard.hw.regmap import register_map
from leopard.model.reference import golden
from leopard.sw.job import COUNTERS, Job, JobResult, job_registers
from leopard.verif import check
from leopard.verif.player import OUTPUTS, Op, command_layout

MODES = ("early_termination", "dense")
READS = ("STATUS", *COUNTERS)


@dataclass(frozen=True)
class Workload:
    """What one part of a player program does: ``problems`` of a trace in each of ``modes``, ``batches``
    jobs per problem; inputs idle and outputs back-pressured with these probabilities (LFSRs seeded by
    ``seed``, 16 bits)."""

    problems: tuple[int, ...]
    modes: tuple[str, ...] = MODES
    batches: int = 1
    idle: float = 0.0
    backpressure: float = 0.0
    seed: int = 1

    @property
    def stall_free(self) -> bool:
        return self.idle == 0 and self.backpressure == 0


@dataclass
class Program:
    """The program words and, in program order, the job each ``CTRL.start`` begins."""

    words: list[int] = field(default_factory=list)
    jobs: list[tuple[int, bool, Job]] = field(default_factory=list)
    """``(problem, dense, job)``."""


def threshold(probability: float) -> int:
    """A probability as the player's 16-bit LFSR threshold."""
    return min(round(probability * (1 << 16)), (1 << 16) - 1)


def compile_program(
    cfg: EngineConfig, top: str, problems: golden.Problems, work: Workload, out: Program | None = None
) -> Program:
    """The player program of ``work`` on ``top`` (appended to ``out`` when given), without ``END``."""
    regs = register_map(cfg)
    layout = command_layout(cfg, top_signature(cfg, top))
    beats = {"q": layouts.query(cfg), "k": layouts.key_beat(cfg), "v": layouts.value_beat(cfg)}
    out = Program() if out is None else out

    def emit(op: Op, arg: int = 0) -> None:
        out.words.append(encode(layout, {"op": int(op), "arg": arg}))

    def write(name: str, value: int, index: int = 0) -> None:
        word = value & ((1 << regs.data_width) - 1)
        emit(Op.WRITE, (regs[name].offset + index) | word << regs.addr_width)

    stalls = threshold(work.idle) | threshold(work.backpressure) << 16 | (work.seed & 0xFFFF) << 32
    emit(Op.STALLS, stalls)
    for mode in work.modes:
        dense = mode == "dense"
        for p in work.problems:
            n = int(problems.valid_len[p])
            slot = p % cfg.threshold_regs
            for j in range(n):
                emit(Op.PUSH_K, encode(beats["k"], {"index": j, "key": problems.k[p, j].tolist()}))
            if top == "engine":
                for j in range(n):
                    emit(Op.PUSH_V, encode(beats["v"], {"index": j, "value": problems.v[p, j].tolist()}))
            write("THRESHOLD", regs["THRESHOLD"].pack(threshold=int(problems.threshold[p])), slot)
            scale = ScaleRegister(int(problems.scale_mantissa[p]), int(problems.scale_shift[p]))
            write("SCALE", scale.word(cfg), slot)
            bounds = np.linspace(0, n, min(work.batches, n) + 1).round().astype(int)
            for first, end in itertools.pairwise(bounds):
                job = Job(queries=problems.q[p, first:end], keys=n, first=int(first),
                          causal=problems.causal, dense=dense, slot=slot)
                for name, value in job_registers(regs, job):
                    write(name, value)
                write("CTRL", regs["CTRL"].pack(start=1))
                out.jobs.append((p, dense, job))
                for row in job.queries:
                    emit(Op.PUSH_Q, encode(beats["q"], row.tolist()))
                emit(Op.WAIT)
                for name in READS:
                    emit(Op.READ, regs[name].offset)
    return out


def end(cfg: EngineConfig, top: str, program: Program) -> Program:
    """``program`` with its final ``END``."""
    program.words.append(encode(command_layout(cfg, top_signature(cfg, top)), {"op": int(Op.END), "arg": 0}))
    return program


def job_results(cfg: EngineConfig, program: Program, lines: list[str]) -> list[JobResult]:
    """The player's printed lines as one ``JobResult`` per job of ``program`` (packet cycles counted
    from the cycle of the job's ``CTRL.start`` write)."""
    regs = register_map(cfg)
    ctrl = regs["CTRL"].offset
    names = {regs[name].offset: name for name in READS}
    beats = {"kept": layouts.kept_beat(cfg), "status": layouts.status_beat(cfg),
             "out": layouts.output_packet(cfg)}
    decoders = {OUTPUTS[name]: (name, layout) for name, layout in beats.items()}
    results: list[JobResult] = []
    start = 0
    for line in lines:
        tag, *fields = line.split()
        stamp = int(fields[0], 16)
        if tag == "W":
            if int(fields[1], 16) == ctrl:
                results.append(JobResult())
                start = stamp
        elif tag == "R":
            name = names.get(int(fields[1], 16))
            value = int(fields[2], 16)
            if name == "STATUS" and regs["STATUS"].unpack(value)["error"]:
                raise ValueError("the engine refused a job (STATUS.error)")
            if name in COUNTERS:
                setattr(results[-1], COUNTERS[name], value)
        elif tag == "E":
            break
        elif tag in decoders:
            stream, layout = decoders[tag]
            beat = decode(layout, int(fields[1], 16))
            results[-1].take(stream, program.jobs[len(results) - 1][2], beat, stamp - start)
    if len(results) != len(program.jobs):
        raise ValueError(f"the player ran {len(results)} of {len(program.jobs)} jobs")
    return results


def check_results(
    cfg: EngineConfig, top: str, jobs: list[tuple[int, bool, Job]], results: list[JobResult],
    work: Workload, expected: dict[str, golden.GoldenResult],
) -> dict[str, Any]:
    """The results of ``work``'s ``jobs`` against the golden model's ``expected`` (per mode, computed
    once for the whole trace) and, when ``work`` is stall-free, the cycle model: per mode its cycles,
    modelled cycles, per-problem cycles and mismatches, the messages of the first differences and the
    problems that differed (``failed``)."""
    outcome: dict[str, Any] = {"mismatches": 0, "messages": [], "failed": []}
    for mode in work.modes:
        dense = mode == "dense"
        comparison = check.Comparison()
        per_problem = []
        for p in work.problems:
            jobs_of = [(job, result) for (q, d, job), result in zip(jobs, results, strict=True)
                       if q == p and d == dense]
            before, differences = comparison.cycles, comparison.mismatches
            check.compare(check.ProblemRun(p, dense, jobs_of), expected[mode], cfg, top, comparison,
                          check_cycles=work.stall_free)
            per_problem.append(comparison.cycles - before)
            if comparison.mismatches > differences and p not in outcome["failed"]:
                outcome["failed"].append(p)
        outcome[mode] = {"cycles": comparison.cycles, "model_cycles": comparison.expected_cycles,
                         "problem_cycles": per_problem, "mismatches": comparison.mismatches}
        outcome["mismatches"] += comparison.mismatches
        outcome["messages"].extend(comparison.messages)
    return outcome
