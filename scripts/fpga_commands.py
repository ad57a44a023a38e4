"""FPGA commands: ``synth`` (resources and Fmax, one lane count or a lane sweep), ``synth-baseline``
(resource counts against the committed baselines) and ``build-board`` (a bitstream with the UART
bridge)."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from leopard.hw import board as board_flow
from leopard.hw import synth, synth_report
from leopard.hw.config import EngineConfig, preset
from leopard.hw.errors import LeopardError
from leopard.hw.files import json_text, write_atomic, write_json
from leopard.hw.generate import TOPS, generate, verilog_text
from leopard.scripts.common import add_config_options, config_from_args, progress

DEFAULT_BASELINE = Path(__file__).resolve().parent.parent / "results" / "fpga" / "baseline.json"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="FPGA resources and Fmax (YoWASP yosys + nextpnr), one lane count or a sweep")
    add_config_options(parser)
    parser.add_argument("--lanes", type=int, nargs="+", metavar="L",
                        help="lane counts to implement (default: the config's); several make a sweep "
                             "with the fixed cost, the area per lane and a plot")
    parser.add_argument("--target", required=True, choices=sorted(synth.TARGETS))
    parser.add_argument("--tops", nargs="+", choices=sorted(TOPS), default=["frontend", "engine"],
                        help="designs to implement (default: both)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.set_defaults(run=run_synth)

    parser = commands.add_parser(
        "synth-baseline", help="synthesize the baseline designs and compare their resources (or update)")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE), metavar="FILE.json")
    parser.add_argument("--update", action="store_true",
                        help="write the measured counts as the new baseline instead of checking")
    parser.set_defaults(run=run_synth_baseline)

    _register_board(commands)


def _register_board(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-board", help="a bitstream of the engine with a UART bridge for a real board")
    parser.add_argument("--board", required=True, choices=sorted(board_flow.BOARDS))
    add_config_options(parser, default=board_flow.DEFAULT_PRESET)
    parser.add_argument("--lanes", type=int, metavar="L", help="lane count (default: the config's)")
    parser.add_argument("--clock-mhz", type=float, default=board_flow.DEFAULT_CLOCK_MHZ,
                        help=f"engine clock made by the PLL (default {board_flow.DEFAULT_CLOCK_MHZ:g})")
    parser.add_argument("--baud", type=int, default=board_flow.DEFAULT_BAUD,
                        help=f"UART bit rate (default {board_flow.DEFAULT_BAUD})")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/board-BOARD)")
    parser.set_defaults(run=run_build_board)


def run_build_board(args: argparse.Namespace) -> None:
    brd = board_flow.board(args.board)
    cfg = config_from_args(args)
    if args.lanes is not None:
        cfg = cfg.replace(lanes=args.lanes)
    out = Path(args.out or f"runs/board-{brd.name}")
    staging = _staging(out)
    files, summary, seconds = board_flow.build(
        brd, cfg, clock_mhz=args.clock_mhz, baud=args.baud, seed=args.seed, progress=progress)
    clock = summary["clock"]
    worst = min(summary["timing"].values(), key=lambda c: c["achieved_mhz"] - c["constraint_mhz"])
    if not summary["timing_met"]:
        raise LeopardError(
            f"timing not met: the engine reaches {worst['achieved_mhz']} MHz, below the "
            f"{worst['constraint_mhz']} MHz clock; lower --clock-mhz"
        )
    shutil.rmtree(staging, ignore_errors=True)
    for name, data in files.items():
        write_atomic(staging / name, data)
    write_json(staging / "board.json", summary)
    write_json(staging / "board.timing.json", {"seconds": seconds})
    generate(cfg, staging / "rtl", "engine")
    _publish(staging, out)
    print(f"{brd.name}: {cfg.lanes}-lane engine at {clock['engine_mhz']:g} MHz "
          f"(reaches {worst['achieved_mhz']} MHz), UART {args.baud} baud; "
          f"bitstream {summary['bitstream']['bytes']} bytes")
    print(f"wrote {out}/top.bit, board.json, bridge.json, rtl/ (wall times in board.timing.json)")


def read_json(path: Path) -> Any:
    """A JSON file, or a one-line error naming it."""
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise LeopardError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise LeopardError(f"{path} is not valid JSON: {error}") from None


def _configs(args: argparse.Namespace) -> list[EngineConfig]:
    cfg = config_from_args(args)
    if args.lanes is None:
        return [cfg]
    if len(set(args.lanes)) != len(args.lanes):
        raise LeopardError(f"--lanes repeats a lane count: {args.lanes}")
    return [cfg.replace(lanes=lanes) for lanes in sorted(args.lanes)]


def _staging(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise LeopardError(f"--out {out} exists and is not a folder")
    return out.with_name(out.name + ".partial")


def _publish(staging: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``staging`` folder."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def run_synth(args: argparse.Namespace) -> None:
    configs = _configs(args)
    tgt = synth.target(args.target)
    synth.check_tools(tgt)
    out = Path(args.out)
    staging = _staging(out)
    tops = [top for top in synth.DESIGN_ORDER if top in args.tops]
    tools = synth.tool_versions()
    steps = [(top, cfg) for top in tops for cfg in configs]
    results, timings = [], {}
    for index, (top, cfg) in enumerate(steps, 1):
        name = f"{top}-lanes{cfg.lanes}"
        _, source = verilog_text(cfg, top)
        key = hashlib.sha256(json_text({
            "config": cfg.to_dict(), "top": top, "target": tgt.name, "seed": args.seed, "tools": tools,
            "verilog_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "flow": [synth.synth_script(tgt, top), *tgt.nextpnr_args, *tgt.constraints, "--router",
                     tgt.router, *synth.NEXTPNR_OPTIONS, tgt.freq_mhz],
        }).encode()).hexdigest()
        cached = staging / "points" / f"{name}.json"
        if cached.exists() and read_json(cached).get("key") == key:
            progress(f"[{index}/{len(steps)}] {name}: reusing the finished run in {cached}")
            point = read_json(cached)
        else:
            result, seconds = synth.implement(
                cfg, top, tgt, seed=args.seed,
                progress=lambda message, i=index: progress(f"[{i}/{len(steps)}] {message}"),
            )
            point = {"key": key, "result": result, "seconds": seconds}
            write_json(cached, point)
        results.append(point["result"])
        timings[name] = point["seconds"]
    base = configs[0].to_dict()
    del base["lanes"]
    report: dict[str, Any] = {
        "schema": "leopard-synth/1",
        "target": {"name": tgt.name, "device": tgt.device, "freq_mhz": tgt.freq_mhz},
        "seed": args.seed,
        "tools": tools,
        "config": base,
        "lanes": [cfg.lanes for cfg in configs],
        "harness": (
            "place and route see the core inside a serial harness (hw/harness.py): every core input and "
            "output bit sits in a register chain reached through 5 pins plus clk and rst, registered at "
            "both ends; resources under 'core' are the core synthesized alone, 'harness.adds' is what "
            "the harness adds, 'placed' and Fmax are of the harnessed design"
        ),
        "results": results,
    }
    fits = {top: synth.fit_lanes([p for p in results if p["top"] == top and "core" in p]) for top in tops}
    if any(fits.values()):
        report["fit"] = {top: fit for top, fit in fits.items() if fit}
    write_json(staging / "synth.json", report)
    write_atomic(staging / "synth.md", synth_report.table(report))
    write_json(staging / "synth.timing.json", {"seconds": timings})
    write_atomic(staging / "config.json", configs[0].to_json())
    if len(configs) > 1:
        synth_report.plot(report, staging / "synth.png")
    shutil.rmtree(staging / "points")
    _publish(staging, out)
    print(synth_report.table(report), end="")
    print(f"wrote {out}/synth.json, synth.md{', synth.png' if len(configs) > 1 else ''} "
          f"(wall times in synth.timing.json)")


def _baseline_designs(baseline: dict[str, Any]) -> list[tuple[str, EngineConfig, str, synth.Target]]:
    designs = []
    for key in sorted(baseline["designs"]):
        try:
            preset_name, top, target_name = key.split("/")
        except ValueError:
            raise LeopardError(f"baseline design {key!r} is not PRESET/TOP/TARGET") from None
        designs.append((key, preset(preset_name), top, synth.target(target_name)))
    return designs


def measure_baseline(baseline: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The core resource counts of every design the baseline names."""
    designs = _baseline_designs(baseline)
    for _, _, _, tgt in designs:
        synth.check_tools(tgt)
    measured = {}
    for index, (key, cfg, top, tgt) in enumerate(designs, 1):
        progress(f"[{index}/{len(designs)}] synthesizing {key}")
        counts = synth.synthesize(cfg, top, tgt)
        measured[key] = {kind: counts[kind] for kind in synth.RESOURCES}
    return measured


def run_synth_baseline(args: argparse.Namespace) -> int:
    path = Path(args.baseline)
    baseline = read_json(path)
    measured = measure_baseline(baseline)
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
