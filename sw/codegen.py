"""Host-side register definitions written from ``regmap.json``: a C header and a Python module, so no
address, field or parameter value is ever typed twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leopard.hw.files import write_atomic

NOTICE = "Generated from regmap.json by `leopard generate`; do not edit."


def _c_name(*parts: str) -> str:
    return "_".join(["LEOPARD", *(part.upper() for part in parts)])


def c_header(regmap: dict[str, Any], guard: str = "LEOPARD_REGS_H") -> str:
    """``#define``s for every register address (arrays: base, count and an indexing macro), every
    field's position, width and mask, and the expected identification and parameter values."""
    lines = [
        f"/* {NOTICE} */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f"#define {_c_name('DATA_WIDTH')} {regmap['data_width']}u",
        f"#define {_c_name('ADDR_WIDTH')} {regmap['addr_width']}u",
        "",
    ]
    for register in regmap["registers"]:
        name = register["name"]
        lines.append(f"/* {name} ({register['access']}): {register['doc']} */")
        if register["count"] > 1:
            lines += [
                f"#define {_c_name(name, 'BASE')} 0x{register['offset']:02X}u",
                f"#define {_c_name(name, 'COUNT')} {register['count']}u",
                f"#define {_c_name(name, 'ADDR')}(slot) ({_c_name(name, 'BASE')} + (unsigned)(slot))",
            ]
        else:
            lines.append(f"#define {_c_name(name, 'ADDR')} 0x{register['offset']:02X}u")
        for field in register["fields"]:
            mask = ((1 << field["width"]) - 1) << field["lsb"]
            lines += [
                f"#define {_c_name(name, field['name'], 'LSB')} {field['lsb']}u",
                f"#define {_c_name(name, field['name'], 'WIDTH')} {field['width']}u",
                f"#define {_c_name(name, field['name'], 'MASK')} 0x{mask:X}u",
            ]
        lines.append("")
    for name, value in regmap["constants"].items():
        lines.append(f"#define {_c_name(name, 'EXPECTED')} 0x{value:X}u")
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def python_module(regmap: dict[str, Any]) -> str:
    """The same definitions as module-level constants (``THRESHOLD_BASE``, ``MODE_DENSE_MASK``…)."""
    lines = [f'"""Register map of a leopard engine. {NOTICE}"""', ""]
    lines += [f"DATA_WIDTH = {regmap['data_width']}", f"ADDR_WIDTH = {regmap['addr_width']}", ""]
    for register in regmap["registers"]:
        name = register["name"]
        if register["count"] > 1:
            lines += [f"{name}_BASE = 0x{register['offset']:02X}", f"{name}_COUNT = {register['count']}"]
        else:
            lines.append(f"{name}_ADDR = 0x{register['offset']:02X}")
        for field in register["fields"]:
            prefix = f"{name}_{field['name'].upper()}"
            mask = ((1 << field["width"]) - 1) << field["lsb"]
            lines += [
                f"{prefix}_LSB = {field['lsb']}",
                f"{prefix}_WIDTH = {field['width']}",
                f"{prefix}_MASK = 0x{mask:X}",
            ]
            if field["signed"]:
                lines.append(f"{prefix}_SIGNED = True")
        lines.append("")
    lines.append("EXPECTED = {")
    lines += [f'    "{name}": 0x{value:X},' for name, value in regmap["constants"].items()]
    lines += ["}", ""]
    return "\n".join(lines)


def write_host_files(out_dir: str | Path, regmap: dict[str, Any]) -> list[Path]:
    """``leopard_regs.h`` and ``leopard_regs.py`` in ``out_dir`` from ``regmap`` (``regmap.json``'s
    contents)."""
    folder = Path(out_dir)
    files = {folder / "leopard_regs.h": c_header(regmap), folder / "leopard_regs.py": python_module(regmap)}
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
