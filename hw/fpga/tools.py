"""Locating the command-line tools installed into the project's environment (YoWASP)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from leopard.hw.errors import LeopardError


def tool(name: str) -> str:
    """The path of ``name``: beside the running Python (the venv's ``bin``) first, then on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise LeopardError(f"{name} not found; run make setup")
    return found
