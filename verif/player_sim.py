"""Running workloads on the trace player (``verif/player.py``): under cocotb around the emitted
Verilog (Icarus, Verilator; the player's own Verilog is compiled beside the top's, which stays byte for
byte what ``leopard generate`` writes), or in Amaranth's simulator around the Amaranth top.

A launch runs one or more segments (a set of problems with their golden results, and a workload on
them) as one program; the printed lines are checked in NumPy afterwards, outside the simulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.sim import Simulator

from leopard.hw.config import EngineConfig
from leopard.hw.files import write_atomic
from leopard.hw.fpga.harness import VerilogCore
from leopard.hw.ports import top_signature
from leopard.hw.rtl.generate import component_verilog, top_component, verilog_text
from leopard.model.reference import golden
from leopard.verif import playback, simulate
from leopard.verif import player as player_module
from leopard.verif.player import TracePlayer

SIMULATORS = ("amaranth", *simulate.SIMULATORS)
PLAYER = "leopard_player"
PROGRAM_DEPTH = 1 << 15
"""The most program words a Verilog build of the player holds; a longer workload takes several
launches."""
MIN_DEPTH = 1 << 10
PRINTED = re.compile(r"^[WRksoE] [0-9a-f]+")
COCOTB_PLAYER = "leopard.verif.cocotb_player"


@dataclass(frozen=True)
class PlayerBuild:
    """A simulator build of the player around one top; ``core_sha256`` is that of the top's Verilog."""

    build: simulate.SimBuild
    top: str
    core: str
    core_sha256: str
    depth: int


def build(cfg: EngineConfig, top: str, sim: str, *, waves: bool = False,
          depth: int = PROGRAM_DEPTH) -> PlayerBuild:
    """The player (``depth`` program words) around ``top``'s emitted Verilog, compiled for ``sim``
    (cached by both texts)."""
    name, source = verilog_text(cfg, top)
    compiled = simulate.build(PLAYER, _player_verilog(cfg, top, name, source, depth), sim, waves=waves,
                              others={name: source})
    return PlayerBuild(compiled, top, name, hashlib.sha256(source.encode()).hexdigest(), depth)


def _player_verilog(cfg: EngineConfig, top: str, name: str, source: str, depth: int) -> str:
    """The player's Verilog around ``name``, kept in the build folder by what it is made of (the
    top's Verilog, the config, the depth, and the player's and the Verilog core's own code): writing a
    deep program memory out takes Amaranth and Yosys a minute."""
    made_of = [source, cfg.to_json(), top, str(depth), inspect.getsource(player_module),
               inspect.getsource(VerilogCore)]
    key = hashlib.sha256("\n".join(made_of).encode()).hexdigest()[:16]
    path = simulate.build_root() / f"{PLAYER}-{key}.v"
    if path.exists():
        return path.read_text()
    player = TracePlayer(cfg, VerilogCore(name, source, top_signature(cfg, top)), depth=depth)
    text = component_verilog(player, PLAYER)
    write_atomic(path, text, now=True)
    return text


def depth_for(words: int) -> int:
    """The program depth of a build for ``words`` words: a power of two, at least ``MIN_DEPTH`` (builds
    are cached per depth, and a deep memory costs Verilator build time)."""
    depth = MIN_DEPTH
    while depth < words:
        depth *= 2
    if depth > PROGRAM_DEPTH:
        raise ValueError(f"a program of {words} words exceeds the player's {PROGRAM_DEPTH}")
    return depth


@dataclass(frozen=True)
class Segment:
    """Problems, their golden results per mode (computed once, by ``expected_results``) and a workload."""

    problems: golden.Problems
    expected: dict[str, golden.GoldenResult]
    work: playback.Workload


def expected_results(cfg: EngineConfig, problems: golden.Problems,
                     modes: tuple[str, ...] = playback.MODES) -> dict[str, golden.GoldenResult]:
    """The golden model's results for every problem, once per mode."""
    return {mode: golden.run(cfg, problems, dense=mode == "dense") for mode in modes}


@dataclass
class Played:
    """What one launch printed, and its wall seconds: loading the program, running it."""

    lines: list[str]
    load_seconds: float
    run_seconds: float
    waves: str | None = None


def _play_cocotb(compiled: PlayerBuild, program: playback.Program, waves_dir: Path | None) -> Played:
    plan = {"program": [f"{word:x}" for word in program.words]}
    outcome = simulate.run(compiled.build, COCOTB_PLAYER, plan, waves_dir=waves_dir, printed=PRINTED,
                           waves_name=compiled.core)
    return Played(outcome["lines"], outcome["load_seconds"], outcome["run_seconds"], outcome.get("waves"))


def _play_amaranth(cfg: EngineConfig, top: str, program: playback.Program) -> Played:
    _, core = top_component(cfg, top)
    player = TracePlayer(cfg, core, depth=len(program.words), program=program.words)
    simulator = Simulator(player)
    simulator.add_clock(1e-8)

    async def bench(ctx: Any) -> None:
        ctx.set(player.go, 1)
        await ctx.tick().until(player.finished)
        await ctx.tick()

    simulator.add_testbench(bench)
    printed = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        simulator.run()
    seconds = time.perf_counter() - started
    return Played([line for line in printed.getvalue().splitlines() if PRINTED.match(line)], 0.0, seconds)


def launch(
    cfg: EngineConfig, top: str, sim: str, segments: list[Segment], *, compiled: PlayerBuild | None = None,
    waves_dir: Path | None = None,
) -> dict[str, Any]:
    """Run ``segments`` as one program on ``sim`` (``amaranth``, or a cocotb simulator with the player
    built by ``build``) and check every job; returns per segment its ``check_results``, and for the
    launch ``mismatches``, ``messages``, the problems that differed (``failed``), ``job_cycles`` (the
    ``CYCLES`` of every stall-free job), ``sim_cycles`` (every clocked cycle), ``load_seconds``,
    ``run_seconds`` and ``check_seconds``."""
    program = playback.Program()
    spans = []
    for segment in segments:
        first = len(program.jobs)
        playback.compile_program(cfg, top, segment.problems, segment.work, program)
        spans.append((first, len(program.jobs)))
    playback.end(cfg, top, program)
    if sim == "amaranth":
        played = _play_amaranth(cfg, top, program)
    else:
        if compiled is None:
            compiled = build(cfg, top, sim, waves=waves_dir is not None, depth=depth_for(len(program.words)))
        if len(program.words) > compiled.depth:
            raise ValueError(f"a program of {len(program.words)} words exceeds the player's {compiled.depth}")
        played = _play_cocotb(compiled, program, waves_dir)
    started = time.perf_counter()
    results = playback.job_results(cfg, program, played.lines)
    outcome: dict[str, Any] = {"segments": [], "mismatches": 0, "messages": [], "failed": [], "job_cycles": 0}
    for segment, (first, stop) in zip(segments, spans, strict=True):
        checked = playback.check_results(cfg, top, program.jobs[first:stop], results[first:stop],
                                         segment.work, segment.expected)
        outcome["segments"].append(checked)
        outcome["mismatches"] += checked["mismatches"]
        outcome["messages"].extend(checked["messages"])
        outcome["failed"].extend(p for p in checked["failed"] if p not in outcome["failed"])
        if segment.work.stall_free:
            outcome["job_cycles"] += sum(checked[mode]["cycles"] for mode in segment.work.modes)
    final = [line for line in played.lines if line.startswith("E ")]
    outcome.update(
        sim_cycles=int(final[-1].split()[1], 16) if final else 0, load_seconds=played.load_seconds,
        run_seconds=played.run_seconds, check_seconds=round(time.perf_counter() - started, 3),
    )
    if played.waves:
        outcome["waves"] = played.waves
    return outcome


def split(cfg: EngineConfig, top: str, problems: golden.Problems, work: playback.Workload,
          size: int, words: int = PROGRAM_DEPTH - 1) -> list[tuple[playback.Workload, int]]:
    """``work`` as launches of at most ``size`` problems whose programs take at most ``words`` words;
    each with its program's length."""
    parts = []
    pending = list(work.problems)
    while pending:
        take = min(size, len(pending))
        while True:
            part = playback.Workload(tuple(pending[:take]), work.modes, work.batches, work.idle,
                                     work.backpressure, work.seed)
            length = len(playback.compile_program(cfg, top, problems, part).words)
            if length <= words or take == 1:
                break
            take = max(1, take // 2)
        parts.append((part, length))
        pending = pending[take:]
    return parts
