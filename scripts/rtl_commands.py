"""Commands around the RTL: ``generate``, ``sim``, ``bench-sim``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leopard.hw.files import write_atomic, write_json
from leopard.hw.regmap import register_map
from leopard.hw.rtl.generate import TOPS, generate
from leopard.model.reference import report
from leopard.scripts.common import (
    add_cluster_options,
    add_config_options,
    config_from_args,
    integer,
    load_trace,
    pool_from_args,
    progress,
)
from leopard.scripts.paths import Output, declare
from leopard.sw import codegen
from leopard.verif import player_sim, simulate, trace_sim


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("generate", help="write the Verilog, config.json and regmap.json")
    add_config_options(parser)
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--top", choices=sorted(TOPS), default="engine",
                        help="the whole head (default) or the QK front end alone")
    declare(parser, inputs=("config",), outputs=(Output("out", folder=True),))
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
    parser.add_argument("--chunk", type=integer(1), default=1024, metavar="P",
                        help="at most P problems per simulator launch (fewer when the player's program "
                             "memory is full; progress is shown per launch)")
    add_cluster_options(parser)
    declare(parser, inputs=("config", "trace"), outputs=(Output("out", beside=(".timing.json",)),))
    parser.set_defaults(run=run_sim)

    parser = commands.add_parser("bench-sim", help="simulated cycles per second of each simulator")
    add_config_options(parser)
    parser.add_argument("--problems", type=integer(1), default=16, help="synthetic problems (default 16)")
    parser.add_argument("--length", type=integer(1), default=64, help="tokens per problem (default 64)")
    parser.add_argument("--sims", nargs="+", choices=player_sim.SIMULATORS,
                        default=list(player_sim.SIMULATORS),
                        help="simulators to measure (default: all three)")
    parser.add_argument("--out", default="runs/bench-sim.json", metavar="FILE.json",
                        help="the rows as JSON, and a Markdown table beside it (.md)")
    declare(parser, inputs=("config",), outputs=(Output("out", beside=(".md",)),))
    parser.set_defaults(run=run_bench_sim)


def run_generate(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    written = generate(cfg, args.out, args.top)
    written += codegen.write_host_files(args.out, register_map(cfg).to_dict())
    for path in written:
        print(f"wrote {path}")


def run_sim(args: argparse.Namespace) -> int:
    trace = load_trace(args)
    simulate.check_simulator(args.sim)
    out = Path(args.out)
    figures, timings, measured = trace_sim.simulate_trace_file(
        trace, args.sim, chunk=args.chunk, waves_dir=out.parent if args.waves else None,
        stalls=args.stalls, progress=progress, pool=pool_from_args(args),
    )
    print(report.table(figures))
    write_json(out, figures)
    timing = out.with_suffix(".timing.json")
    write_json(timing, timings)
    print(f"wrote {out} (timings in {timing})")
    for m in measured.values():
        if "waves" in m:
            print(f"waveforms: {m['waves']}")
    if figures["mismatches"]:
        for m in measured.values():
            for message in m["messages"][:10]:
                print(f"mismatch: {message}", file=sys.stderr)
        return 1
    return 0


def run_bench_sim(args: argparse.Namespace) -> None:
    """The same synthetic workload on each simulator, front end and engine, side by side."""
    from leopard.verif.throughput import simulator_rates, table

    cfg = config_from_args(args)
    rows = simulator_rates(cfg, problems=args.problems, length=min(args.length, cfg.max_seq_len),
                           simulators=tuple(args.sims), progress=progress)
    text = table(rows)
    print(text, end="")
    out = Path(args.out)
    write_json(out, {"config": cfg.to_dict(), "problems": args.problems, "length": args.length, "rows": rows})
    write_atomic(out.with_suffix(".md"), text)
    print(f"wrote {out} and {out.with_suffix('.md')}")

