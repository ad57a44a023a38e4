"""``leopard bench-workers``: one command that fans out, run side by side on several worker counts, its
wall times and whether its outputs are the same bytes on every count."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_atomic, write_json
from leopard.scripts.common import integer, progress
from leopard.scripts.paths import Output, declare

FANNING_OUT = ("golden", "sim", "sweep", "synth", "soak", "bench-levers")
"""The commands that take ``--workers``."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench-workers", help="a command on 1, 2, … workers side by side: wall times, same outputs")
    parser.add_argument("--workers", type=integer(1), nargs="+", default=[1, 2], metavar="N",
                        help="worker counts to compare (default: 1 2)")
    parser.add_argument("--repeat", type=integer(1), default=1,
                        help="rounds, each running every count once in turn (default 1)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="also writes FILE.md")
    parser.add_argument("measured", nargs=argparse.REMAINDER, metavar="-- COMMAND …",
                        help=f"the leopard command to run, with its own --out ({', '.join(FANNING_OUT)}); "
                             "its --out (and --work) are removed before each run, so that every run starts "
                             "afresh; caches elsewhere (simulator and Verilog builds, YoWASP) are kept: warm "
                             "them with one run first")
    declare(parser, outputs=(Output("out", beside=(".md",)),))
    parser.set_defaults(run=run_bench_workers)


def _measured_command(argv: list[str]) -> tuple[list[str], list[Path]]:
    """The command, and what it writes: its ``--out`` (compared across runs) then its ``--work``, if
    any (a cache that would let a later run reuse an earlier one's points)."""
    argv = argv[1:] if argv[:1] == ["--"] else argv
    if not argv or argv[0] not in FANNING_OUT:
        raise LeopardError(f"give the command to measure after --, one of {', '.join(FANNING_OUT)}")
    if any(word.split("=")[0] in ("--workers", "--scheduler") for word in argv):
        raise LeopardError("leave --workers and --scheduler out of the measured command: bench-workers "
                           "sets them")
    if any(word.startswith(("--out=", "--work=")) for word in argv):
        raise LeopardError("write the measured command's --out and --work as two words (--out PATH)")
    if "--out" not in argv[:-1]:
        raise LeopardError("the measured command needs its own --out (the output compared across runs)")
    places = {argv.index(option) + 1 for option in ("--out", "--work") if option in argv[:-1]}
    written = [Path(argv[place]) for place in sorted(places)]
    for word in (word for place, word in enumerate(argv) if place not in places and Path(word).exists()):
        if any(Path(word).resolve().is_relative_to(path.resolve()) for path in written):
            raise LeopardError(f"the measured command's input {word} is in what it writes, which "
                               "bench-workers removes before each run; write elsewhere")
    return argv, written


def digest(out: Path) -> str:
    """SHA-256 of a command's output: the file, or every file of the folder that does not only record
    timings (``*timing*``) or hold training checkpoints (``*.pt``), with its relative path."""
    sha = hashlib.sha256()
    files = [out] if out.is_file() else sorted(p for p in out.rglob("*") if p.is_file())
    for path in files:
        if "timing" in path.name or path.suffix == ".pt":
            continue
        sha.update(str(path.relative_to(out) if path != out else path.name).encode() + b"\0")
        sha.update(path.read_bytes())
    return sha.hexdigest()


def _remove(out: Path) -> None:
    for path in (out, out.with_name(out.name + ".partial")):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_bench_workers(args: argparse.Namespace) -> int:
    command, written = _measured_command(args.measured)
    env = {name: value for name, value in os.environ.items() if name != "LEOPARD_WORKERS"}
    runs: dict[int, list[float]] = {workers: [] for workers in args.workers}
    digests: dict[int, set[str]] = {workers: set() for workers in args.workers}
    for round_index in range(1, args.repeat + 1):
        for workers in args.workers:
            for path in written:
                _remove(path)
            progress(f"[round {round_index}/{args.repeat}] leopard {' '.join(command)} --workers {workers}")
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "leopard.scripts", *command, "--workers", str(workers)],
                env=env, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise LeopardError(f"leopard {command[0]} on {workers} workers exited {done.returncode}: "
                                   f"{last}")
            runs[workers].append(round(seconds, 2))
            digests[workers].add(digest(written[0]))
    base = statistics.median(runs[args.workers[0]])
    rows = [{"workers": workers, "seconds": runs[workers], "median_seconds": statistics.median(runs[workers]),
             "speedup": round(base / statistics.median(runs[workers]), 3)}
            for workers in args.workers]
    identical = len(set().union(*digests.values())) == 1
    report: dict[str, Any] = {"command": ["leopard", *command], "cores": len(os.sched_getaffinity(0)),
                              "repeat": args.repeat, "identical_outputs": identical, "rows": rows}
    text = table(report)
    print(text, end="")
    out = Path(args.out)
    write_json(out, report)
    write_atomic(out.with_suffix(".md"), text)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if not identical:
        print(f"the outputs of `leopard {command[0]}` differ between worker counts", file=sys.stderr)
        return 1
    return 0


def table(report: dict[str, Any]) -> str:
    """Markdown: the command, then one row per worker count."""
    same = "identical" if report["identical_outputs"] else "DIFFERENT"
    lines = [f"`{' '.join(report['command'])}` on {report['cores']} cores, {report['repeat']} round(s); "
             f"outputs {same} across worker counts.", "",
             "| workers | wall seconds | median | speedup vs first |", "|---:|---|---:|---:|"]
    lines += [f"| {row['workers']} | {', '.join(f'{s:.1f}' for s in row['seconds'])} "
              f"| {row['median_seconds']:.1f} | {row['speedup']:.2f}× |" for row in report["rows"]]
    return "\n".join(lines) + "\n"
