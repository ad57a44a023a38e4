"""Commands around the RTL: ``generate``, ``sim``, ``bench-sim``."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_json
from leopard.hw.generate import TOPS, generate, verilog_text
from leopard.model import report, synthetic
from leopard.model import trace as trace_file
from leopard.scripts.common import add_config_options, config_from_args, load_trace, progress
from leopard.sw import codegen
from leopard.verif import simulate
from leopard.verif.plan import MODES, make_plan


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="write the Verilog, config.json and regmap.json")
    add_config_options(parser)
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--top", choices=sorted(TOPS), default="engine",
                        help="the whole head (default) or the QK front end alone")
    parser.set_defaults(run=run_generate)

    parser = commands.add_parser(
        "sim", help="simulate a trace on the RTL (front end and engine in parallel), check, report"
    )
    add_config_options(parser, default=None)
    parser.add_argument("--trace", required=True, metavar="FILE.npz")
    parser.add_argument("--sim", required=True, choices=simulate.SIMULATORS)
    parser.add_argument("--out", required=True, metavar="REPORT.json")
    parser.add_argument("--waves", action="store_true", help="write FST waveforms beside the report")
    parser.add_argument("--stalls", action="store_true",
                        help="also run with random idle inputs and back-pressure (values checked)")
    parser.add_argument("--chunk", type=int, default=16, metavar="P",
                        help="problems per simulator launch (progress is shown per launch)")
    parser.set_defaults(run=run_sim)

    parser = commands.add_parser("bench-sim", help="simulated cycles per second of each simulator")
    add_config_options(parser)
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--out", default="runs/bench-sim.json", metavar="FILE.json")
    parser.set_defaults(run=run_bench_sim)


def run_generate(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    for path in [*generate(cfg, args.out, args.top), *codegen.write_host_files(args.out)]:
        print(f"wrote {path}")


def simulate_trace(
    trace_path: str, trace: trace_file.Trace, sim: str, top: str, *, chunk: int,
    waves_dir: Path | None, stalls: bool,
) -> dict[str, Any]:
    """Run every problem of the trace on ``top`` in both modes (stall-free), in launches of ``chunk``
    problems; return the measured cycles, mismatches, messages and the simulator's throughput."""
    cfg = trace.config
    module, source = verilog_text(cfg, top)
    started = time.perf_counter()
    progress(f"building the {sim} model of {module} (cached by the Verilog's hash)")
    compiled = simulate.build(module, source, sim, waves=waves_dir is not None)
    build_seconds = time.perf_counter() - started
    chunks = [list(range(i, min(i + chunk, trace.count))) for i in range(0, trace.count, chunk)]
    if waves_dir is not None:
        chunks = [list(range(trace.count))]
    totals: dict[str, Any] = {
        "problem_cycles": {mode: [] for mode in MODES},
        "mismatches": 0, "messages": [], "sim_cycles": 0, "sim_seconds": 0.0,
        "build_seconds": build_seconds,
    }
    for index, problems in enumerate(chunks, 1):
        progress(f"[{index}/{len(chunks)}] {sim} {module}: problems {problems[0]}..{problems[-1]} "
                  f"of {trace.count}")
        runs = [{"trace": trace_path, "problems": problems}]
        if stalls:
            runs.append({"trace": trace_path, "problems": problems, "idle": 0.3, "backpressure": 0.5,
                         "batches": 2, "seed": index, "modes": ["early_termination"]})
        outcome = simulate.run(
            compiled, simulate.COCOTB_BENCH, make_plan(cfg, runs, top=top), waves_dir=waves_dir
        )
        for mode in MODES:
            totals["problem_cycles"][mode].extend(outcome["runs"][0][mode]["problem_cycles"])
        totals["mismatches"] += outcome["mismatches"]
        totals["messages"].extend(outcome["messages"])
        totals["sim_cycles"] += outcome["sim_cycles"]
        totals["sim_seconds"] += outcome["seconds"]
        if "waves" in outcome:
            totals["waves"] = outcome["waves"]
    return totals


def run_sim(args: argparse.Namespace) -> int:
    trace = load_trace(args)
    simulate.check_simulator(args.sim)
    if args.chunk < 1:
        raise LeopardError(f"--chunk must be at least 1, got {args.chunk}")
    out = Path(args.out)
    waves_dir = out.parent if args.waves else None
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {
            top: pool.submit(simulate_trace, args.trace, trace, args.sim, top, chunk=args.chunk,
                             waves_dir=waves_dir, stalls=args.stalls)
            for top in ("frontend", "engine")
        }
        measured = {top: future.result() for top, future in running.items()}
    mismatches = sum(m["mismatches"] for m in measured.values())
    figures = report.report(
        trace.config, trace.problems(), measured["frontend"]["problem_cycles"],
        measured["engine"]["problem_cycles"], mismatches=mismatches,
    )
    print(report.table(figures))
    write_json(out, figures)
    timing = out.with_suffix(".timing.json")
    write_json(timing, {
        top: {
            "simulator": args.sim,
            "simulated_cycles": m["sim_cycles"],
            "simulation_seconds": round(m["sim_seconds"], 3),
            "cycles_per_second": round(m["sim_cycles"] / max(m["sim_seconds"], 1e-9)),
            "build_seconds": round(m["build_seconds"], 3),
        }
        for top, m in measured.items()
    })
    print(f"wrote {out} (timings in {timing})")
    for m in measured.values():
        if "waves" in m:
            print(f"waveforms: {m['waves']}")
    if mismatches:
        for m in measured.values():
            for message in m["messages"][:10]:
                print(f"mismatch: {message}", file=sys.stderr)
        return 1
    return 0


def run_bench_sim(args: argparse.Namespace) -> None:
    """The same synthetic trace on Amaranth's simulator, Icarus and Verilator, side by side."""
    from leopard.verif.amaranth_sim import run_plan

    cfg = config_from_args(args)
    trace = synthetic.random_trace(cfg, seed=0, problems=args.problems, length=args.length,
                                   prune_fraction=0.8)
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch) / "bench.npz")
        trace_file.save(trace, path)
        plan = make_plan(cfg, [{"trace": path}])
        for sim in ("amaranth", *simulate.SIMULATORS):
            progress(f"simulating on {sim}")
            if sim == "amaranth":
                outcome = run_plan(cfg, plan)
            else:
                simulate.check_simulator(sim)
                module, source = verilog_text(cfg)
                outcome = simulate.run(simulate.build(module, source, sim), simulate.COCOTB_BENCH, plan)
            if outcome["mismatches"]:
                raise LeopardError(f"{sim} disagreed with the golden model: {outcome['messages'][:3]}")
            rows[sim] = {
                "simulated_cycles": outcome["sim_cycles"],
                "seconds": outcome["seconds"],
                "cycles_per_second": round(outcome["sim_cycles"] / outcome["seconds"]),
            }
    width = max(map(len, rows))
    print(f"{'simulator':<{width}}  cycles  seconds  cycles/s")
    for sim, row in rows.items():
        cycles, seconds, rate = row["simulated_cycles"], row["seconds"], row["cycles_per_second"]
        print(f"{sim:<{width}}  {cycles:>6}  {seconds:>7.2f}  {rate:>8}")
    write_json(args.out, {"preset_config": cfg.to_dict(), "simulators": rows})
    print(f"wrote {args.out}")
