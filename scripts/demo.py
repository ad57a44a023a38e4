"""``leopard demo``: the main job on built-in defaults, step by step, into one run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from leopard.hw.config import preset
from leopard.hw.files import write_json
from leopard.model import report, synthetic
from leopard.model import trace as trace_file


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="run the built-in example end to end")
    parser.add_argument("--out", default="runs/demo", metavar="RUN_DIR")
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> None:
    run_dir = Path(args.out)
    cfg = preset("minilm")
    print("[1/2] synthetic trace (minilm, 4 problems of 128 tokens, 90% pruned)")
    trace = synthetic.random_trace(cfg, seed=0, problems=4, prune_fraction=0.9)
    trace_file.save(trace, run_dir / "trace.npz")
    print("[2/2] golden model")
    figures = report.golden_report(cfg, trace.problems())
    write_json(run_dir / "golden.json", figures)
    print(report.table(figures))
    print(f"outputs in {run_dir}/")
