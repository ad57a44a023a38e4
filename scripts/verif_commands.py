"""Verification campaigns: ``soak`` (random configs and traces on the RTL) and ``mutate`` (deliberate bugs
that the tests must catch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from leopard.scripts.common import SEED, add_cluster_options, integer, pool_from_args, progress
from leopard.scripts.paths import Output, declare
from leopard.verif import mutation, simulate, soak
from leopard.verif.mutants import MUTANTS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "soak", help="random configs and traces on the RTL with random stalls, against the golden model")
    parser.add_argument("--keys", type=integer(1), required=True, metavar="K",
                        help=f"visible query-key pairs to decide, each mode once, over {soak.MIN_CONFIGS} "
                             "random configs")
    parser.add_argument("--seed", type=SEED, required=True, help="draws the configs and the traces")
    parser.add_argument("--sim", default="verilator", choices=simulate.SIMULATORS,
                        help="simulator (default: verilator)")
    parser.add_argument("--out", default="runs/soak", metavar="DIR",
                        help="soak.json, soak.md, soak.timing.json and, on a failure, first-failure.npz "
                             "(default: runs/soak)")
    add_cluster_options(parser)
    declare(parser, outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_soak)

    parser = commands.add_parser(
        "mutate", help="the mutation campaign: deliberate bugs in the RTL and the models, each run "
                       "against the tests that cover it")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these mutants only (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--out", default="runs/mutation", metavar="DIR",
                        help="mutation.json, mutation.md, mutation.timing.json (default: runs/mutation)")
    declare(parser, outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_mutate)


def run_soak(args: argparse.Namespace) -> int:
    simulate.check_simulator(args.sim)
    out = Path(args.out)
    result = soak.run(args.keys, args.seed, out, sim=args.sim, progress=progress, pool=pool_from_args(args))
    print(soak.table(result), end="")
    print(f"wrote {out}/soak.json and soak.md (wall times in soak.timing.json)"
          + (f"; the first failing problem in {out}/first-failure.npz" if result["first_failure"] else ""))
    return 1 if result["mismatches"] else 0


def run_mutate(args: argparse.Namespace) -> int:
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:<36} {mutant.path:<30} {mutant.what}")
        return 0
    mutants = mutation.select(args.only)
    out = Path(args.out)
    report = mutation.campaign(mutants, out, progress)
    print(mutation.table(report), end="")
    print(f"wrote {out}/mutation.json and mutation.md (times in mutation.timing.json)")
    return 1 if report["problems"] else 0
