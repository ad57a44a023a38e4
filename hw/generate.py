"""Verilog generation: the chosen top, its ``config.json`` and ``regmap.json``, byte-reproducible."""

from __future__ import annotations

import os
from pathlib import Path

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.lib import wiring

from .config import EngineConfig
from .engine import Engine
from .files import json_text, write_atomic
from .frontend import FrontEnd
from .regmap import register_map

TOPS = {"engine": ("leopard_engine", Engine), "frontend": ("leopard_frontend", FrontEnd)}


def top_component(cfg: EngineConfig, top: str) -> tuple[str, wiring.Component]:
    """The Verilog module name and the Amaranth component of ``top``."""
    name, build = TOPS[top]
    return name, build(cfg)


YOSYS_SCRIPT = ("proc", "memory_collect", "opt_clean", "write_verilog")
"""Processes become multiplexers, so combinational logic is continuous assignments: every simulator
(Icarus included) evaluates it at time zero, which ``always @*`` blocks do not guarantee."""


def verilog_text(cfg: EngineConfig, top: str = "engine") -> tuple[str, str]:
    """``(module name, Verilog source)`` of ``top`` built from ``cfg`` (no source paths embedded)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    name, component = top_component(cfg, top)
    text = rtlil.convert(component, name=name, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_SCRIPT])
    return name, yosys.run(["-q", "-"], script, ignore_warnings=True)


def generate(cfg: EngineConfig, out_dir: str | Path, top: str = "engine") -> list[Path]:
    """Write ``<module>.v``, ``config.json`` and ``regmap.json`` into ``out_dir``; return the paths."""
    name, source = verilog_text(cfg, top)
    out = Path(out_dir)
    files = {
        out / f"{name}.v": source,
        out / "config.json": cfg.to_json(),
        out / "regmap.json": json_text(register_map(cfg).to_dict()),
    }
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
