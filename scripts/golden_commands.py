"""Commands around the golden model: ``config``, ``trace-random``, ``golden``, ``bench-golden``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from leopard.hw.files import write_atomic, write_json
from leopard.model.reference import compiled_cycles, cycles, golden, report, synthetic, whole_trace
from leopard.model.reference import trace as trace_file
from leopard.scripts.common import (
    SEED,
    add_cluster_options,
    add_config_options,
    config_from_args,
    config_to_run,
    integer,
    number,
    pool_from_args,
    progress,
)
from leopard.scripts.paths import Output, declare


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("config", help="print an engine config as JSON")
    add_config_options(parser)
    parser.add_argument("--out", metavar="FILE", help="also write it to FILE")
    declare(parser, inputs=("config",), outputs=(Output("out"),))
    parser.set_defaults(run=run_config)

    parser = commands.add_parser("trace-random", help="write a synthetic attention trace")
    add_config_options(parser)
    parser.add_argument("--out", required=True, metavar="FILE.npz")
    parser.add_argument("--seed", type=SEED, required=True)
    parser.add_argument("--problems", type=integer(1), default=4)
    parser.add_argument("--length", type=integer(1), help="tokens per problem (default: max_seq_len)")
    parser.add_argument("--prune-fraction", type=number(0, 1), default=0.8)
    parser.add_argument("--causal", action="store_true")
    declare(parser, inputs=("config",), outputs=(Output("out"),))
    parser.set_defaults(run=run_trace_random)

    parser = commands.add_parser("golden", help="run the golden model on a trace, write its report")
    add_config_options(parser, default=None)
    parser.add_argument("--trace", required=True, metavar="FILE.npz")
    parser.add_argument("--out", required=True, metavar="REPORT.json")
    parser.add_argument("--reference", action="store_true",
                        help="the straightforward path: each problem alone (slow; the same report)")
    add_cluster_options(parser)
    declare(parser, inputs=("config", "trace"), outputs=(Output("out"),))
    parser.set_defaults(run=run_golden)

    parser = commands.add_parser("bench-golden", help="measure the golden model's throughput")
    add_config_options(parser)
    parser.add_argument("--problems", type=integer(1), default=16)
    parser.add_argument("--length", type=integer(1), help="tokens per problem (default: max_seq_len)")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--out", default="runs/bench-golden.json", metavar="FILE.json")
    declare(parser, inputs=("config",), outputs=(Output("out"),))
    parser.set_defaults(run=run_bench_golden)


def run_config(args: argparse.Namespace) -> None:
    text = config_from_args(args).to_json()
    print(text, end="")
    if args.out:
        write_atomic(args.out, text)


def run_trace_random(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    trace = synthetic.random_trace(
        cfg, seed=args.seed, problems=args.problems, length=args.length,
        prune_fraction=args.prune_fraction, causal=args.causal,
    )
    trace_file.save(trace, args.out)
    print(f"wrote {args.out}: {trace.count} problems of {trace.q.shape[1]} tokens")


def run_golden(args: argparse.Namespace) -> None:
    figures = whole_trace.golden_report(
        args.trace, config=lambda own: config_to_run(args, own), reference=args.reference, progress=progress,
        pool=pool_from_args(args),
    )
    print(report.table(figures))
    write_json(args.out, figures)
    print(f"wrote {args.out}")


def run_bench_golden(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    trace = synthetic.random_trace(cfg, seed=args.seed, problems=args.problems, length=args.length)
    problems = trace.problems()
    start = time.perf_counter()
    result = golden.run(cfg, problems)
    model_seconds = time.perf_counter() - start
    compiled_cycles.problem_cycles(cfg, result.planes[:1], result.visible[:1], problems.valid_len[:1])
    start = time.perf_counter()
    compiled_cycles.problem_cycles(cfg, result.planes, result.visible, problems.valid_len)
    cycle_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for p in range(problems.count):
        cycles.job_cycles(cfg, cycles.planes_by_query(result.planes[p], result.visible[p],
                                                      int(problems.valid_len[p])))
    readable_seconds = time.perf_counter() - start
    keys = int(result.visible.sum())
    figures = {
        "keys": keys,
        "golden_seconds": round(model_seconds, 4),
        "golden_keys_per_second": round(keys / model_seconds),
        "cycle_model_seconds": round(cycle_seconds, 4),
        "cycle_model_keys_per_second": round(keys / cycle_seconds),
        "readable_cycle_model_seconds": round(readable_seconds, 4),
        "readable_cycle_model_keys_per_second": round(keys / readable_seconds),
    }
    print(report.table(figures))
    write_json(Path(args.out), figures)
    print(f"wrote {args.out}")
