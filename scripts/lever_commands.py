"""``leopard bench-levers``: the same real sentences with the paper's bound and with each lever, alone and
combined, in one table (accuracy, pruning, planes, front-end and whole-head speedup and efficiency), and
the logic each hardware lever costs."""

from __future__ import annotations

import argparse
from pathlib import Path

from leopard.model.training.runtime import torch_ready
from leopard.scripts.common import add_cluster_options, integer, pool_from_args, progress
from leopard.scripts.paths import Output, declare


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench-levers", help="the paper's bound vs each lever on real traces")
    parser.add_argument("manifest", metavar="MANIFEST.json",
                        help="the variants (name, export, quantization) and, optionally, `leopard synth` "
                             "reports per hardware setting; paths relative to it (see docs/levers.md)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="writes DIR/levers.json and DIR/levers.md")
    parser.add_argument("--work", default="runs/levers", metavar="DIR",
                        help="per-variant traces and evaluations, reused when unchanged "
                             "(default: runs/levers)")
    parser.add_argument("--threads", type=integer(1), default=1,
                        help="torch threads of each variant's run (default: 1; the traces depend on it)")
    add_cluster_options(parser)
    declare(parser, inputs=("manifest",), outputs=(Output("out", folder=True), Output("work", folder=True)))
    parser.set_defaults(run=run_bench_levers)


def run_bench_levers(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    from leopard.model.training import lever_bench

    out = Path(args.out)
    print(lever_bench.bench(Path(args.manifest), out, Path(args.work), progress, pool=pool_from_args(args),
                            threads=args.threads), end="")
    print(f"wrote {out / 'levers.json'} and {out / 'levers.md'}")
