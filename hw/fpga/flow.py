"""The FPGA flow's commands as functions: a synthesis run over lane counts and tops (cached per point,
published as one folder), the resource baselines, and a board build.

Each takes a ``progress`` callable for its ``[n/N]`` lines; outputs appear only once complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leopard.hw import fanout
from leopard.hw.config import EngineConfig, preset
from leopard.hw.errors import LeopardError
from leopard.hw.files import json_text, publish_folder, read_json, staging_folder, write_atomic, write_json
from leopard.hw.fpga import board as board_flow
from leopard.hw.fpga import synth, synth_report
from leopard.hw.rtl.generate import TOPS, generate, verilog_text

Progress = Callable[[str], None]

HARNESS_NOTE = (
    "place and route see the core inside a serial harness (hw/fpga/harness.py): every core input and "
    "output bit sits in a register chain reached through 5 pins plus clk and rst, registered at "
    "both ends; resources under 'core' are the core synthesized alone, 'harness.adds' is what "
    "the harness adds, 'placed' and Fmax are of the harnessed design"
)


def point_key(cfg: EngineConfig, top: str, tgt: synth.Target, seeds: tuple[int, ...], tools: dict[str, str]
              ) -> str:
    """What a finished point depends on (config, top, target, seeds, tool versions, the Verilog's SHA-256,
    the flow's scripts and options), hashed: a cached point is reused only under the same key."""
    _, source = verilog_text(cfg, top)
    return hashlib.sha256(json_text({
        "config": cfg.to_dict(), "top": top, "target": tgt.name, "seeds": list(seeds), "tools": tools,
        "verilog_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "flow": [synth.synth_script(tgt, top), *tgt.nextpnr_args, *tgt.constraints, "--router",
                 tgt.router, *synth.NEXTPNR_OPTIONS, tgt.freq_mhz],
    }).encode()).hexdigest()


def implement_point(cfg: EngineConfig, top: str, tgt: synth.Target, seeds: tuple[int, ...], key: str,
                    cached: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Synthesize, place and route one (top, config) and keep the finished point in ``cached``."""
    result, seconds = synth.implement(cfg, top, tgt, seeds=seeds, progress=progress or (lambda message: None))
    point = {"key": key, "result": result, "seconds": seconds}
    write_json(cached, point, now=True)
    return point


def synthesize_sweep(
    configs: list[EngineConfig], tops: list[str], tgt: synth.Target, *, seeds: tuple[int, ...], out: Path,
    progress: Progress, pool: fanout.Pool | None = None,
) -> dict[str, Any]:
    """Synthesize, place and route every (top, config) into ``out`` (``synth.json``, ``synth.md``,
    ``synth.timing.json``, ``config.json``, and ``synth.png`` for a lane sweep); return the report. The
    points run on ``pool`` (one thread each).

    Finished points wait in ``OUT.partial/points`` until the whole run is done, so a rerun after an
    interruption skips them."""
    synth.check_tools(tgt)
    staging = staging_folder(out)
    tops = [top for top in synth.DESIGN_ORDER if top in tops]
    tools = synth.tool_versions()
    steps = [(top, cfg) for top in tops for cfg in configs]
    names = [f"{top}-lanes{cfg.lanes}" for top, cfg in steps]
    points: dict[str, dict[str, Any]] = {}
    missing = []
    for name, (top, cfg) in zip(names, steps, strict=True):
        key = point_key(cfg, top, tgt, seeds, tools)
        cached = staging / "points" / f"{name}.json"
        if cached.exists() and read_json(cached, "synthesis point").get("key") == key:
            progress(f"{name}: reusing the finished run in {cached}")
            points[name] = read_json(cached, "synthesis point")
        else:
            missing.append((name, (cfg, top, tgt, seeds, key, cached)))
    with pool or fanout.Pool(1) as running:
        inner = {"progress": progress} if running.serial else {}
        pending = [fanout.Point(name, implement_point, arguments, inner, cost=arguments[0].lanes)
                   for name, arguments in missing]
        if pending:
            progress(f"{len(pending)} place-and-route runs on {running.describe()}")
        done = fanout.values(running.run(pending, progress, what="synthesis points"), "synthesis points")
    points.update(zip([point.name for point in pending], done, strict=True))
    results = [points[name]["result"] for name in names]
    timings = {name: points[name]["seconds"] for name in names}
    base = configs[0].to_dict()
    del base["lanes"]
    report: dict[str, Any] = {
        "schema": "leopard-synth/1",
        "target": {"name": tgt.name, "device": tgt.device, "freq_mhz": tgt.freq_mhz},
        "seeds": list(seeds),
        "tools": tools,
        "config": base,
        "lanes": [cfg.lanes for cfg in configs],
        "harness": HARNESS_NOTE,
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
    publish_folder(staging, out, drop=("points",))
    return report


def _baseline_designs(baseline: dict[str, Any]) -> list[tuple[str, EngineConfig, str, synth.Target]]:
    designs = []
    for key in sorted(baseline["designs"]):
        try:
            preset_name, top, target_name = key.split("/")
        except ValueError:
            raise LeopardError(f"baseline design {key!r} is not PRESET/TOP/TARGET") from None
        if top not in TOPS:
            raise LeopardError(f"baseline design {key!r}: unknown top {top!r} "
                               f"(one of {', '.join(sorted(TOPS))})")
        designs.append((key, preset(preset_name), top, synth.target(target_name)))
    return designs


def measure_baseline(baseline: dict[str, Any], progress: Progress) -> dict[str, dict[str, int]]:
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


def build_board(
    brd: board_flow.Board, cfg: EngineConfig, *, clock_mhz: float, baud: int, seed: int, out: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Build the bitstream of ``cfg``'s engine for ``brd`` into ``out`` (``top.bit``, ``board.json``,
    ``bridge.json``, ``rtl/``, ``board.timing.json``); refused, with nothing written, when timing is not
    met. Returns ``board.json``'s summary."""
    staging = staging_folder(out, fresh=True)
    files, summary, seconds = board_flow.build(
        brd, cfg, clock_mhz=clock_mhz, baud=baud, seed=seed, progress=progress)
    worst = worst_clock(summary)
    if not summary["timing_met"]:
        raise LeopardError(
            f"timing not met: the engine reaches {worst['achieved_mhz']} MHz, below the "
            f"{worst['constraint_mhz']} MHz clock; lower --clock-mhz"
        )
    for name, data in files.items():
        write_atomic(staging / name, data)
    write_json(staging / "board.json", summary)
    write_json(staging / "board.timing.json", {"seconds": seconds})
    generate(cfg, staging / "rtl", "engine")
    publish_folder(staging, out)
    return summary


def worst_clock(summary: dict[str, Any]) -> dict[str, Any]:
    """The clock of a board build with the least slack."""
    return min(summary["timing"].values(), key=lambda c: c["achieved_mhz"] - c["constraint_mhz"])
