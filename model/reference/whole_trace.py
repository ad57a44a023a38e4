"""``leopard golden`` on a trace file of any size: problems read in blocks, each block through the golden
and cycle models, the report accumulated in trace order (``report.Totals``).

Memory holds the trace's per-problem scalars, every problem's four cycle counts, and one block: about
``BLOCK_BYTES`` (the block's padded pairs times ``golden.REPORT_BYTES_PER_PAIR``), whatever the trace's
size. The report is the same, bit for bit, for any block size and for the straightforward reference path
(``report.reference``: each problem alone through ``golden.run`` and ``cycles.job_cycles``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leopard.hw.config import EngineConfig
from leopard.model.reference import golden, report
from leopard.model.reference.trace import TraceReader

BLOCK_BYTES = 256 << 20
"""Working memory of one block of problems."""

PROGRESS_SECONDS = 5.0
"""Least time between two progress lines."""


def block_problems(length: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Problems of ``length`` padded tokens per block so that a block stays within ``block_bytes``."""
    return max(1, block_bytes // (golden.REPORT_BYTES_PER_PAIR * length * length))


def golden_report(
    path: str | Path,
    *,
    config: Callable[[EngineConfig], EngineConfig] | None = None,
    reference: bool = False,
    block_bytes: int = BLOCK_BYTES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The golden report of the trace file ``path``, run under ``config(trace's config)`` when given;
    ``reference`` takes the straightforward path (slow; for checking the fast one)."""
    with TraceReader(path) as reader:
        cfg = config(reader.config) if config else reader.config
        totals = report.Totals(cfg)
        model = report.reference if reference else report.modelled
        last = time.monotonic()
        for start, trace in reader.blocks(block_problems(reader.length, block_bytes), cfg):
            totals.add(*model(cfg, trace.problems()))
            done = start + trace.count
            if progress and (time.monotonic() - last >= PROGRESS_SECONDS or done == reader.count):
                progress(f"golden: {done:,} of {reader.count:,} problems")
                last = time.monotonic()
    return totals.figures()
