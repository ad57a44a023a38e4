"""FPGA commands: ``synth`` (resources and Fmax, one lane count or a lane sweep), ``bench-hw`` (the
front end against the bit-parallel baseline on a trace), ``synth-baseline`` (resource counts against the
committed baselines) and ``build-board`` (a bitstream with the UART bridge)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.files import read_json, write_json
from leopard.hw.fpga import board as board_flow
from leopard.hw.fpga import flow, synth, synth_report
from leopard.hw.json_shape import NUMBER, check
from leopard.hw.rtl.generate import TOPS
from leopard.model.reference.trace import TraceReader
from leopard.scripts.common import (
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
from leopard.verif import hw_bench

BASELINE_SHAPE = {"tolerance": NUMBER, "slack": NUMBER,
                  "designs": {"*": dict.fromkeys(synth.RESOURCES, int)}}
"""What ``synth-baseline`` reads from its baseline file: limits per design and resource."""
DEFAULT_BASELINE = Path(__file__).resolve().parent.parent / "results" / "fpga" / "baseline.json"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="FPGA resources and Fmax (YoWASP yosys + nextpnr), one lane count or a sweep")
    add_config_options(parser)
    parser.add_argument("--lanes", type=integer(1), nargs="+", metavar="L",
                        help="lane counts to implement (default: the config's); several make a sweep "
                             "with the fixed cost, the area per lane and a plot")
    parser.add_argument("--target", required=True, choices=sorted(synth.TARGETS))
    parser.add_argument("--tops", nargs="+", choices=sorted(TOPS), default=["frontend", "engine"],
                        help="designs to implement (default: both)")
    parser.add_argument("--seeds", type=integer(0), nargs="+", default=[1, 2, 3], metavar="SEED",
                        help="nextpnr seeds; Fmax is the worst (default 1 2 3)")
    parser.add_argument("--out", required=True, metavar="DIR")
    add_cluster_options(parser)
    declare(parser, inputs=("config",), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_synth)

    parser = commands.add_parser(
        "synth-baseline", help="synthesize the baseline designs and compare their resources (or update)")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE), metavar="FILE.json")
    parser.add_argument("--update", action="store_true",
                        help="write the measured counts as the new baseline instead of checking")
    declare(parser, inputs=("baseline",))
    parser.set_defaults(run=run_synth_baseline)

    _register_bench_hw(commands)
    _register_board(commands)


DEMO_TRACE = "runs/demo/trace.npz"


def _register_bench_hw(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench-hw", help="the front end against the dense bit-parallel unit: area, Fmax, keys/s per LUT")
    parser.add_argument("--trace", default=DEMO_TRACE, metavar="TRACE.npz",
                        help=f"the trace to count cycles on (default: {DEMO_TRACE}, made by make demo)")
    add_config_options(parser, default=None)
    parser.add_argument("--target", default="ecp5", choices=["ecp5"], help="FPGA (default ecp5)")
    parser.add_argument("--freq-mhz", type=number(above=0), default=hw_bench.CONSTRAINT_MHZ,
                        help=f"clock constraint given to nextpnr (default {hw_bench.CONSTRAINT_MHZ:g}: above "
                             "every design's Fmax, so the router never stops early)")
    parser.add_argument("--seeds", type=integer(0), nargs="+", default=[1, 2, 3], metavar="SEED",
                        help="nextpnr seeds; Fmax is the worst (default 1 2 3)")
    parser.add_argument("--out", default="runs/bench-hw", metavar="DIR", help="default: runs/bench-hw")
    add_cluster_options(parser)
    declare(parser, inputs=("trace", "config"), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_bench_hw)


def run_bench_hw(args: argparse.Namespace) -> None:
    trace = Path(args.trace)
    if not trace.exists():
        hint = "; make it with make demo" if args.trace == DEMO_TRACE else ""
        raise LeopardError(f"trace {trace} does not exist{hint}, or pass --trace FILE")
    with TraceReader(trace) as reader:
        cfg = config_to_run(args, reader.config)
    out = Path(args.out)
    report = hw_bench.bench(cfg, trace, target=args.target, freq_mhz=args.freq_mhz,
                            seeds=tuple(dict.fromkeys(args.seeds)), out=out, progress=progress,
                            pool=pool_from_args(args))
    print(hw_bench.table(report), end="")
    print(f"wrote {out}/bench-hw.json, bench-hw.md, bench-hw.png, synth-dsp/, synth-lut/")


def _register_board(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-board", help="a bitstream of the engine with a UART bridge for a real board")
    parser.add_argument("--board", required=True, choices=sorted(board_flow.BOARDS))
    add_config_options(parser, default=board_flow.DEFAULT_PRESET)
    parser.add_argument("--lanes", type=integer(1), metavar="L", help="lane count (default: the config's)")
    parser.add_argument("--clock-mhz", type=number(above=0), default=board_flow.DEFAULT_CLOCK_MHZ,
                        help=f"engine clock made by the PLL (default {board_flow.DEFAULT_CLOCK_MHZ:g})")
    parser.add_argument("--baud", type=integer(1), default=board_flow.DEFAULT_BAUD,
                        help=f"UART bit rate (default {board_flow.DEFAULT_BAUD})")
    parser.add_argument("--seed", type=integer(0), default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/board-BOARD)")
    declare(parser, inputs=("config",), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_build_board)


def run_build_board(args: argparse.Namespace) -> None:
    brd = board_flow.board(args.board)
    cfg = config_from_args(args)
    if args.lanes is not None:
        cfg = cfg.replace(lanes=args.lanes)
    out = Path(args.out or f"runs/board-{brd.name}")
    summary = flow.build_board(brd, cfg, clock_mhz=args.clock_mhz, baud=args.baud, seed=args.seed, out=out,
                               progress=progress)
    worst = flow.worst_clock(summary)
    print(f"{brd.name}: {cfg.lanes}-lane engine at {summary['clock']['engine_mhz']:g} MHz "
          f"(reaches {worst['achieved_mhz']} MHz), UART {args.baud} baud; "
          f"bitstream {summary['bitstream']['bytes']} bytes")
    print(f"wrote {out}/top.bit, board.json, bridge.json, rtl/ (wall times in board.timing.json)")


def _configs(args: argparse.Namespace) -> list[EngineConfig]:
    cfg = config_from_args(args)
    if args.lanes is None:
        return [cfg]
    if len(set(args.lanes)) != len(args.lanes):
        raise LeopardError(f"--lanes repeats a lane count: {args.lanes}")
    return [cfg.replace(lanes=lanes) for lanes in sorted(args.lanes)]


def run_synth(args: argparse.Namespace) -> None:
    configs = _configs(args)
    out = Path(args.out)
    report = flow.synthesize_sweep(configs, args.tops, synth.target(args.target),
                                   seeds=tuple(dict.fromkeys(args.seeds)), out=out,
                                   progress=progress, pool=pool_from_args(args))
    print(synth_report.table(report), end="")
    print(f"wrote {out}/synth.json, synth.md{', synth.png' if len(configs) > 1 else ''} "
          f"(wall times in synth.timing.json)")


def run_synth_baseline(args: argparse.Namespace) -> int:
    path = Path(args.baseline)
    baseline = check(read_json(path, "baseline"), BASELINE_SHAPE, str(path))
    measured = flow.measure_baseline(baseline, progress)
    if args.update:
        write_json(path, {**baseline, "designs": measured})
        print(f"wrote {path}")
        return 0
    problems = synth.check_baseline(baseline, measured)
    for key, counts in measured.items():
        print(f"{key}: " + ", ".join(f"{kind} {counts[kind]} (baseline {baseline['designs'][key][kind]})"
                                     for kind in synth.RESOURCES))
    for problem in problems:
        print(f"over the baseline: {problem}", file=sys.stderr)
    return 1 if problems else 0
