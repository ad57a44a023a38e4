"""``leopard report RUN_DIR``: a run folder rendered as ``summary.json``, ``report.md`` and PNG plots
(``leopard.model.reference.run_report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from leopard.hw.errors import LeopardError
from leopard.hw.files import json_text
from leopard.model.reference.run_report import render, summarize
from leopard.scripts.paths import declare


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="render a run folder as Markdown, plots and summary.json")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    declare(parser, inputs=("run_dir",))
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    if not run_dir.exists():
        raise LeopardError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise LeopardError(f"{run_dir} is a file; give the run folder (as written by leopard demo)")
    for path in render(run_dir):
        print(f"wrote {path}")
    print(json_text(summarize(run_dir)), end="")
