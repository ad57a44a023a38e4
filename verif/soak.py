"""``leopard soak``: random engine configs drawn from the whole config space, random traces on each, run
on the Verilog under a simulator with random idle inputs and back-pressure, and checked exactly against
the golden model (both tops, both modes, plus a stalled early-termination run).

The configs and traces follow from the seed alone, so the same command writes the same report; wall
times go to a separate timing file."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.config import ConfigError, EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.files import write_atomic, write_json
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.verif import trace_sim

MIN_CONFIGS = 20
MAX_PROBLEMS = 256
PROGRAM_DEPTH = 4096
"""Program words per launch: more launches, but players that build in seconds (a deep program memory
takes Amaranth and Yosys minutes to write out)."""
SPACE: dict[str, tuple[Any, ...]] = {
    "head_dim": (4, 8, 12, 16, 24, 32, 64),
    "q_bits": tuple(range(4, 13)),
    "k_bits": tuple(range(4, 13)),
    "v_bits": tuple(range(4, 13)),
    "lanes": tuple(range(1, 17)),
    "max_seq_len": (16, 24, 32, 48, 64),
    "fifo_depth": (4, 6, 8, 16),
    "queries_in_flight": (2, 4, 8, 16),
    "result_buffers": (2, 3, 4),
    "skip_zero_planes": (False, True),
    "status_stream": (False, True),
}
"""Where each drawn field comes from; ``v_lanes`` is a random divisor of ``head_dim``, and a draw the
config refuses (an accumulator over 62 bits, say) is drawn again."""
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Point:
    """One soak config and its trace's shape."""

    cfg: EngineConfig
    seed: int
    problems: int
    length: int
    causal: bool
    prune_fraction: float

    @property
    def keys(self) -> int:
        per_problem = self.length * (self.length + 1) // 2 if self.causal else self.length ** 2
        return self.problems * per_problem


def draw_config(rng: np.random.Generator) -> EngineConfig:
    """A random valid config from ``SPACE``."""
    while True:
        fields = {name: values[rng.integers(len(values))] for name, values in SPACE.items()}
        divisors = [d for d in range(1, fields["head_dim"] + 1) if fields["head_dim"] % d == 0]
        fields["v_lanes"] = divisors[rng.integers(len(divisors))]
        fields = {name: value.item() if isinstance(value, np.generic) else value
                  for name, value in fields.items()}
        try:
            return EngineConfig(threshold_regs=4, **fields)
        except ConfigError:
            continue


def plan(keys: int, seed: int) -> list[Point]:
    """Random points until they hold at least ``keys`` visible query–key pairs and ``MIN_CONFIGS``
    configs: each aims at an even share of ``keys`` with problems of ``N/2 … N`` tokens, at most
    ``MAX_PROBLEMS`` of them (more configs are drawn when the shares fall short)."""
    rng = np.random.default_rng(seed)
    share = math.ceil(keys / MIN_CONFIGS)
    points: list[Point] = []
    while len(points) < MIN_CONFIGS or sum(point.keys for point in points) < keys:
        cfg = draw_config(rng)
        length = int(rng.integers(cfg.max_seq_len // 2, cfg.max_seq_len + 1))
        causal = bool(rng.integers(2))
        per_problem = length * (length + 1) // 2 if causal else length ** 2
        points.append(Point(cfg, seed=seed * 1000 + len(points), length=length, causal=causal,
                            problems=min(MAX_PROBLEMS, math.ceil(share / per_problem)),
                            prune_fraction=round(float(rng.uniform(0, 0.95)), 3)))
    return points


def soak_point(point: Point, sim: str) -> tuple[dict[str, Any], trace_file.Trace | None]:
    """One config's random trace on both tops (with the stalled run): its report row, and the trace of
    its first failing problem alone when one failed."""
    trace = synthetic.random_trace(point.cfg, seed=point.seed, problems=point.problems, length=point.length,
                                   prune_fraction=point.prune_fraction, causal=point.causal)
    figures, _, measured = trace_sim.simulate_trace_file(
        trace, sim, chunk=1024, waves_dir=None, stalls=True, progress=lambda message: None,
        depth=PROGRAM_DEPTH)
    failed = sorted({p for m in measured.values() for p in m["failed"]})
    row = {
        "config": point.cfg.to_dict(), "seed": point.seed, "problems": point.problems, "length": point.length,
        "causal": point.causal, "prune_fraction": point.prune_fraction, "keys": point.keys,
        "mismatches": figures["mismatches"], "failed_problems": failed,
        "cycles": figures["cycles"], "cycles_head": figures["cycles_head"],
        "messages": [message for m in measured.values() for message in m["messages"]][:5],
    }
    return row, trace.select(failed[:1]) if failed else None


def run(keys: int, seed: int, out: Path, *, sim: str, progress: Progress,
        pool: fanout.Pool | None = None) -> dict[str, Any]:
    """Soak ``keys`` pairs over at least ``MIN_CONFIGS`` configs, each a point on ``pool``; write
    ``out/soak.json``, ``soak.md``, ``soak.timing.json`` and, when a problem fails,
    ``out/first-failure.npz`` (that problem alone)."""
    if keys < 1:
        raise LeopardError(f"--keys must be at least 1, got {keys}")
    points = plan(keys, seed)
    with pool or fanout.Pool(1) as running:
        keys_planned = sum(point.keys for point in points)
        progress(f"{len(points)} configs, {keys_planned:,} keys, on {running.describe()}")
        work = [fanout.Point(f"config {index} ({describe(point.cfg)}: {point.problems} problems of "
                             f"{point.length} tokens{' causal' if point.causal else ''})",
                             soak_point, (point, sim))
                for index, point in enumerate(points, 1)]
        outcomes = running.run(work, progress, what="configs",
                               summary=lambda value: f"{value[0]['mismatches']} mismatches")
    done = fanout.values(outcomes, "configs")
    rows = [row for row, _ in done]
    seconds = {f"config-{index}": round(outcome.seconds, 1) for index, outcome in enumerate(outcomes, 1)}
    failure = next(((index, trace) for index, (_, trace) in enumerate(done, 1) if trace is not None), None)
    report = {
        "schema": "leopard-soak/1", "seed": seed, "keys_asked": keys, "simulator": sim, "space": {
            name: list(values) for name, values in SPACE.items()},
        "configs": len(rows), "keys": sum(row["keys"] for row in rows),
        "mismatches": sum(row["mismatches"] for row in rows), "rows": rows,
        "first_failure": None if failure is None else {"config": failure[0], "trace": "first-failure.npz"},
    }
    write_json(out / "soak.json", report)
    write_atomic(out / "soak.md", table(report))
    write_json(out / "soak.timing.json", {"seconds": seconds})
    if failure is not None:
        trace_file.save(failure[1], out / "first-failure.npz")
    return report


def describe(cfg: EngineConfig) -> str:
    """A config in a few words: the fields the soak draws."""
    flags = [name for name in ("skip_zero_planes", "status_stream") if getattr(cfg, name)]
    return (f"D={cfg.head_dim} q{cfg.q_bits}/k{cfg.k_bits}/v{cfg.v_bits} L={cfg.lanes} N={cfg.max_seq_len} "
            f"vl={cfg.v_lanes} fifo={cfg.fifo_depth} qif={cfg.queries_in_flight} rb={cfg.result_buffers}"
            + (f" {'+'.join(flags)}" if flags else ""))


def table(report: dict[str, Any]) -> str:
    """The soak report as Markdown: one row per config."""
    lines = [
        f"# Soak: seed {report['seed']}, {report['configs']} configs, {report['keys']:,} keys, "
        f"{report['mismatches']} mismatches ({report['simulator']}, random stalls and back-pressure)",
        "",
        "| # | config | problems × tokens | keys | front-end speedup | mismatches |",
        "|---|---|---|---|---|---|",
    ]
    for index, row in enumerate(report["rows"], 1):
        cfg = EngineConfig.from_dict(row["config"])
        cycles = row["cycles"]
        lines.append(
            f"| {index} | {describe(cfg)} | {row['problems']} × {row['length']}"
            f"{' causal' if row['causal'] else ''} | {row['keys']:,} "
            f"| {cycles['dense'] / cycles['early_termination']:.3f} | {row['mismatches']} |")
    return "\n".join(lines) + "\n"

