"""``leopard golden`` on a trace file of any size: problems read in blocks, each block through the golden
and cycle models, the report accumulated in trace order (``report.Totals``).

Memory holds the trace's per-problem scalars, every problem's four cycle counts, and one block: about
``BLOCK_BYTES`` (``problem_bytes`` per problem: its pairs up to the longest problem's length), whatever
the trace's size (and at most two blocks per Dask worker in flight; workers read their blocks from the
file themselves when its members are stored uncompressed, as ``leopard trace`` writes them). The report is
the same, bit for bit, for any block size, any number of workers and for the straightforward reference
path (``report.reference``: each problem alone through ``golden.run`` and ``cycles.job_cycles``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.resources import check_memory
from leopard.model.reference import golden, report
from leopard.model.reference.trace import BlockRef, Trace, TraceReader

BLOCK_BYTES = 256 << 20
"""Working memory of one block of problems."""

PROGRESS_SECONDS = 5.0
"""Least time between two progress lines."""


def problem_bytes(longest: int, length: int, dim: int) -> int:
    """Working memory of one problem of at most ``longest`` valid tokens, padded to ``length``: its
    pairs (``golden.REPORT_BYTES_PER_PAIR`` each; padding is never computed) and its ``q``, ``k``, ``v``
    as read and as 64-bit integers."""
    return golden.REPORT_BYTES_PER_PAIR * longest * longest + 27 * length * dim


def block_problems(longest: int, length: int, dim: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Problems per block so that a block stays within ``block_bytes``."""
    return max(1, block_bytes // problem_bytes(longest, length, dim))


Block = tuple[dict[str, np.ndarray], report.ProblemCycles, report.ProblemCycles]
"""One block's ``problem_sums`` and cycles (what ``report.Totals.add`` takes)."""


def block_report(cfg: EngineConfig, trace: Trace, reference: bool) -> Block:
    """The ``Block`` of the problems ``trace``."""
    return (report.reference if reference else report.modelled)(cfg, trace.problems())


def block_report_from_file(ref: BlockRef, reference: bool) -> Block:
    """The ``Block`` of the problems ``ref``, read by the worker from the trace file itself."""
    return block_report(ref.config, ref.load(), reference)


def golden_report(
    path: str | Path,
    *,
    config: Callable[[EngineConfig], EngineConfig] | None = None,
    reference: bool = False,
    block_bytes: int = BLOCK_BYTES,
    progress: Callable[[str], None] | None = None,
    pool: fanout.Pool | None = None,
) -> dict[str, Any]:
    """The golden report of the trace file ``path``, run under ``config(trace's config)`` when given;
    ``reference`` takes the straightforward path (slow; for checking the fast one). Blocks run as points
    on ``pool``, at most two per worker in flight (a trace of one block runs in this process)."""
    with TraceReader(path) as reader:
        longest = reader.longest
        check_memory(problem_bytes(longest, reader.length, reader.config.head_dim),
                     f"the golden model on a problem of {longest} tokens", "use shorter problems")
        cfg = config(reader.config) if config else reader.config
        totals = report.Totals(cfg)
        size = block_problems(longest, reader.length, cfg.head_dim, block_bytes)
        running = pool if pool is not None and reader.count > size else fanout.Pool(1)
        if reader.random_access and not running.serial:
            points = (fanout.Point(f"problems {start}-{end - 1}", block_report_from_file,
                                   (reader.ref(start, end, cfg), reference))
                      for start in range(0, reader.count, size) for end in [min(start + size, reader.count)])
        else:
            points = (fanout.Point(f"problems {start}-{start + trace.count - 1}", block_report,
                                   (cfg, trace, reference)) for start, trace in reader.blocks(size, cfg))
        last = time.monotonic()
        with running:
            for outcome in running.stream(points, window=2 * running.workers):
                if outcome.error is not None:
                    raise LeopardError(outcome.error)
                totals.add(*outcome.value)
                if progress and (time.monotonic() - last >= PROGRESS_SECONDS
                                 or totals.problems == reader.count):
                    progress(f"golden: {totals.problems:,} of {reader.count:,} problems")
                    last = time.monotonic()
    return totals.figures()
