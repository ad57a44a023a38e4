"""Options and checks shared by the commands: the engine config and the trace it must agree with."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable

from leopard.hw import fanout
from leopard.hw.config import MICROARCHITECTURE, EngineConfig, preset
from leopard.hw.errors import LeopardError
from leopard.model.reference import trace as trace_file


def add_config_options(parser: argparse.ArgumentParser, *, default: str | None = "minilm",
                       default_help: str | None = None) -> None:
    """``--preset NAME`` or ``--config FILE.json`` (mutually exclusive); ``default_help`` says what the
    default is when it is not just ``default``."""
    group = parser.add_mutually_exclusive_group()
    hint = f" (default: {default_help or default})" if default else ""
    group.add_argument("--preset", metavar="NAME", help=f"named engine config{hint}")
    group.add_argument("--config", metavar="FILE", help="engine config as JSON")
    parser.set_defaults(default_preset=default)


def config_from_args(args: argparse.Namespace) -> EngineConfig | None:
    """The config the options name, the default preset when none is given, or None without default."""
    if args.config:
        return EngineConfig.load(args.config)
    if args.preset:
        return preset(args.preset)
    return preset(args.default_preset) if args.default_preset else None


def load_trace(args: argparse.Namespace) -> trace_file.Trace:
    """The ``--trace`` file, run under ``--preset``/``--config`` when given: refused when that config
    differs from the trace's in more than its microarchitecture (lanes, buffers, zero-plane skipping…)."""
    trace = trace_file.load(args.trace)
    return dataclasses.replace(trace, config=config_to_run(args, trace.config))


def config_to_run(args: argparse.Namespace, own: EngineConfig) -> EngineConfig:
    """The config to run a trace made for ``own`` under: ``--preset``/``--config`` when given (refused
    when it differs from ``own`` in more than its microarchitecture), else ``own``."""
    given = config_from_args(args)
    if given is None or given == own:
        return own
    if not own.computes_like(given):
        mine, other = own.to_dict(), given.to_dict()
        diffs = ", ".join(f"{k} {mine[k]} vs {other[k]}" for k in sorted(mine)
                          if mine[k] != other[k] and k not in MICROARCHITECTURE)
        option = f"--preset {args.preset}" if args.preset else f"--config {args.config}"
        raise LeopardError(
            f"trace {args.trace} holds problems of another config than {option} ({diffs}); "
            "drop the option or regenerate the trace"
        )
    return given


WORKERS_VARIABLE = "LEOPARD_WORKERS"
"""Overrides the default of ``--workers`` (the machine's cores)."""


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler``: where the command's independent points run (``hw/fanout.py``)."""
    parser.add_argument("--workers", type=integer(1), metavar="N",
                        help=f"local Dask worker processes (default: ${WORKERS_VARIABLE}, else one per "
                             "core; 1 runs every point in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the points on the Dask cluster whose scheduler is at ADDRESS "
                             "(e.g. tcp://10.0.0.5:8786) instead of local workers")


def pool_from_args(args: argparse.Namespace) -> fanout.Pool:
    """The ``fanout.Pool`` that ``--workers`` / ``--scheduler`` ask for."""
    workers, given = args.workers, os.environ.get(WORKERS_VARIABLE, "")
    if workers is None and given:
        if not given.isdigit() or int(given) < 1:
            raise LeopardError(f"${WORKERS_VARIABLE} must be a whole number of workers, at least 1, got "
                               f"{given!r}")
        workers = int(given)
    return fanout.Pool(workers, args.scheduler)


def progress(message: str) -> None:
    """One line of progress on standard error (standard output stays the result)."""
    print(message, file=sys.stderr, flush=True)


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[minimum, maximum]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            span = f"at least {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    return parse


def number(minimum: float | None = None, maximum: float | None = None, *,
           above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number, at least ``minimum``, above ``above``, at most ``maximum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if ((minimum is not None and value < minimum) or (above is not None and value <= above)
                or (maximum is not None and value > maximum)):
            low = f"≥ {minimum:g}" if minimum is not None else f"> {above:g}" if above is not None else ""
            high = f"≤ {maximum:g}" if maximum is not None else ""
            span = " and ".join(filter(None, (low, high)))
            raise argparse.ArgumentTypeError(f"must be {span}, got {value:g}")
        return value
    return parse


SEED = integer(0, 2**32 - 1)
"""Seeds of NumPy and torch generators."""
