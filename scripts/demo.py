"""``leopard demo``: the whole flow on built-in defaults, step by step, into one run folder.

The shipped export (MiniLM fine-tuned on Rotten Tomatoes with learned thresholds, λ = 0.4, made by
``leopard sweep``; see docs/training.md) is quantized with the default levers (``docs/levers.md``) and
evaluated on the held-out movies, a few held-out sentences
become an attention trace, the golden model and the Verilog simulation (Verilator) run on it, and the
run folder is rendered as a report. Each step's output goes to ``RUN_DIR/logs``; the steps' wall times
to ``RUN_DIR/timings.json``, the only file that differs between two runs.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_json
from leopard.model.reference.run_report import summarize
from leopard.model.training.runtime import torch_ready
from leopard.scripts.common import integer
from leopard.scripts.paths import Output, declare

RESULTS = Path(__file__).resolve().parent.parent / "results" / "training"
EXPORT = RESULTS / "export-lambda-0.4.npz"
SWEEP = RESULTS / "sweep.json"

FINAL_ROWS = (
    ("accuracy, float (same weights, dense)", "accuracy_float", "{:.2f} %"),
    ("accuracy, quantized + pruned (hardware)", "accuracy_quantized_pruned", "{:.2f} %"),
    ("accuracy loss (pruned − float)", "accuracy_loss", "{:+.2f} points"),
    ("scores pruned (held-out movies)", "pruned_fraction_test", "{:.1%}"),
    ("scores pruned (traced sentences)", "pruned_fraction", "{:.1%}"),
    ("mean planes per key (of 8)", "mean_planes", "{:.2f}"),
    ("front-end speedup over dense", "speedup", "{:.3f}x"),
    ("whole-head speedup over dense", "speedup_head", "{:.3f}x"),
    ("front-end efficiency vs ideal", "efficiency", "{:.3f}"),
    ("whole-head efficiency vs ideal", "efficiency_head", "{:.3f}"),
    ("RTL vs golden mismatches", "mismatches", "{}"),
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="run the whole flow on built-in defaults")
    parser.add_argument("--out", default="runs/demo", metavar="RUN_DIR", help="default: runs/demo")
    parser.add_argument("--export", default=str(EXPORT), metavar="EXPORT",
                        help="the exported model (default: the shipped λ = 0.4 export)")
    parser.add_argument("--sentences", type=integer(1), default=4, metavar="N",
                        help="held-out sentences traced through the RTL (default: 4)")
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    declare(parser, inputs=("export",), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_demo)


def _step(command_line: Callable[[list[str]], int], number: int, total: int, title: str, argv: list[str],
          log: Path) -> float:
    """Run one ``leopard`` command through ``command_line`` (in this process), its standard output into
    ``log``."""
    print(f"[{number}/{total}] {title}", flush=True)
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stream, contextlib.redirect_stdout(stream):
        code = command_line(argv)
    if code != 0:
        raise LeopardError(f"step {number} ({title}) failed with exit code {code}; see {log}")
    return time.perf_counter() - started


def run_demo(args: argparse.Namespace) -> int:
    run = Path(args.out)
    export = Path(args.export)
    if not export.exists():
        raise LeopardError(f"export {export} not found; produce one with `leopard train` (docs/training.md)")
    torch_ready()
    from leopard.model.training import export as export_file

    if export_file.version_of(export) == export_file.MODEL_VERSION:
        raise LeopardError(f"export {export} holds a transformers model (version 3); the demo runs the "
                           "project's BERT: give its export, or run leopard evaluate and trace on this one")
    run.mkdir(parents=True, exist_ok=True)
    if SWEEP.exists():
        shutil.copyfile(SWEEP, run / "sweep.json")
    trace = str(run / "trace.npz")
    quantized = str(run / "export.npz")
    steps = [
        ("quantizing the export with the default levers (keys clipped at the 99th percentile, "
         "per-channel key scales)", ["requantize", str(export), "--out", quantized]),
        ("evaluating it on the held-out movies",
         ["evaluate", quantized, "--out", str(run / "evaluation.json")]),
        (f"tracing {args.sentences} held-out sentences through the quantized model",
         ["trace", quantized, "--sentences", str(args.sentences), "--out", trace]),
        ("golden and cycle models", ["golden", "--trace", trace, "--out", str(run / "golden.json")]),
        ("generating the Verilog, register map and headers",
         ["generate", "--preset", "minilm", "--out", str(run / "rtl")]),
        (f"simulating the RTL under {args.sim} against the golden model",
         ["sim", "--trace", trace, "--sim", args.sim, "--out", str(run / "sim.json")]),
        ("rendering the report", ["report", str(run)]),
    ]
    timings = {}
    for number, (title, argv) in enumerate(steps, 1):
        log = run / "logs" / f"{argv[0]}.log"
        timings[argv[0]] = round(_step(args.command_line, number, len(steps), title, argv, log), 1)
    write_json(run / "timings.json", timings)
    summary = summarize(run)
    width = max(len(label) for label, _, _ in FINAL_ROWS)
    print()
    for label, key, form in FINAL_ROWS:
        value = summary[key]
        print(f"{label:<{width}}  {'–' if value is None else form.format(value)}")
    print(f"\nrun folder: {run}/ (report.md, summary.json, plots/, rtl/, logs/; timings.json)")
    return 1 if summary["mismatches"] else 0
