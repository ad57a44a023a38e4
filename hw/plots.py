"""PNG figures with matplotlib (Agg): one way to get ``pyplot`` and one way to save a figure, so every
plot of the project has the same resolution and the same bytes for the same data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_atomic

DPI = 120
PNG_METADATA = {"Software": None}
"""No version stamp: the same figure gives the same bytes."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a one-line error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise LeopardError("the package matplotlib is not installed; run `make setup`") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: str | Path) -> None:
    """Write ``figure`` as a PNG to ``path`` (atomically) and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    pyplot().close(figure)
    write_atomic(path, buffer.getvalue())
