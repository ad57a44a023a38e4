"""``leopard compare``: leopard against dense, top-k, SpAtten and Sanger on the same model, test sentences
and quantization: accuracy with 95 % intervals, scores computed in full, QK bit operations, memory read,
energy (docs/energy.md) and speedup, as JSON, Markdown and a Pareto plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from leopard.hw.files import write_atomic, write_json
from leopard.model.training.runtime import torch_ready
from leopard.scripts import demo
from leopard.scripts.common import add_cluster_options, integer, pool_from_args, progress
from leopard.scripts.paths import Output, declare

DEFAULT_EXPORT = str(demo.EXPORT)


def _points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of accuracy points, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 100] points, got {text!r}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compare", help="leopard vs dense, top-k, SpAtten and Sanger: accuracy, "
                                                 "energy, speedup")
    parser.add_argument("export", nargs="?", default=DEFAULT_EXPORT, metavar="EXPORT",
                        help=f"export.npz written by leopard train (default: {DEFAULT_EXPORT})")
    parser.add_argument("--out", default="runs/compare", metavar="DIR",
                        help="writes DIR/compare.json, DIR/compare.md and DIR/pareto.png "
                             "(default: runs/compare)")
    parser.add_argument("--sentences", type=integer(1), metavar="N",
                        help="test sentences (default: the whole test split)")
    parser.add_argument("--validation-sentences", type=integer(1), default=512, metavar="N",
                        help="training sentences the peers' knobs are tuned on (default: 512)")
    parser.add_argument("--budget", type=_points, default=0.2, metavar="POINTS",
                        help="accuracy points a peer may lose against dense on the validation sentences, "
                             "or what leopard loses there if more (default: 0.2)")
    parser.add_argument("--dense-control", metavar="EXPORT",
                        help="the dense control's export (leopard train --dense-control): accuracy changes "
                             "are then paired against it")
    parser.add_argument("--finetune-steps", type=integer(0), default=0, metavar="N",
                        help="also fine-tune each peer's weights N steps under its own mask, as leopard's "
                             "hard phase does under its thresholds (default: 0, off; the export's is 100)")
    parser.add_argument("--seed", type=integer(0), default=0,
                        help="which sentences and bootstrap resamples (default: 0)")
    parser.add_argument("--threads", type=integer(1), default=1,
                        help="torch threads of each run (default: 1; the predictions may depend on it)")
    add_cluster_options(parser)
    declare(parser, inputs=("export", "dense_control"), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    from leopard.model.reference import compare_report
    from leopard.model.training import compare, export

    made = export.load(args.export)
    control = None if args.dense_control is None else export.load_dense_control(args.dense_control, made)
    report = compare.compare(made, args.sentences, args.validation_sentences, args.seed, args.budget,
                             progress, control, args.finetune_steps, pool_from_args(args), args.threads)
    out = Path(args.out)
    table = compare_report.markdown(report)
    write_json(out / "compare.json", report)
    write_atomic(out / "compare.md", table)
    compare_report.pareto(report, out / "pareto.png")
    print(table, end="")
    print(f"wrote {out / 'compare.json'}, {out / 'compare.md'} and {out / 'pareto.png'}")
