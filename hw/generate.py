"""Verilog generation: the chosen top, its ``config.json`` and ``regmap.json``, byte-reproducible."""

from __future__ import annotations

import os
from pathlib import Path

from amaranth.back import verilog
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


def verilog_text(cfg: EngineConfig, top: str = "engine") -> tuple[str, str]:
    """``(module name, Verilog source)`` of ``top`` built from ``cfg`` (no source paths embedded)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    name, component = top_component(cfg, top)
    return name, verilog.convert(component, name=name, emit_src=False)


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
