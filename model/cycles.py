"""Cycle model of the bit-serial QK front end, exact for stall-free runs of the RTL.

Scheduling policy (what ``hw/frontend.py`` implements):

- A job is one problem: its queries in order, each against its visible keys in index order.
- Cycle 0 is the cycle the host writes ``CTRL.start``; the first query is taken from the Q stream in
  cycle 1 and its first keys are dispatched in cycle ``DISPATCH_START = 2``.
- In every cycle, each free lane (idle, or finishing its key's last needed plane this cycle) takes
  the next key of the query held in the dispatch slot. A key dispatched in cycle ``d`` that needs
  ``p`` planes occupies its lane in cycles ``d+1 … d+p`` and frees it in cycle ``d+p``.
- Keys of one query only are dispatched per cycle; the next query enters the slot in the cycle its
  predecessor's last key is dispatched and may be dispatched from the next cycle.
- At most ``M = queries_in_flight`` queries are in flight: query ``i`` waits until query ``i − M``
  has completed (all its keys decided, in query order), visible the cycle after.
- The job's cycle count is the cycle in which its last query completes (cycles ``1 …`` that one).

Loading a key into the key store takes ``k_bits`` cycles (one plane written per cycle).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.timing import DISPATCH_START


@dataclass(frozen=True)
class JobCycles:
    """Front-end timing of one job, in cycles after the ``start`` write."""

    cycles: int
    """Busy cycles of the job (the ``CYCLES`` counter)."""
    query_done: list[int]
    """Cycle in which each query completed."""


def frontend_job(planes_by_query: Sequence[Sequence[int]], *, lanes: int, in_flight: int) -> JobCycles:
    """Simulate the dispatcher of the module docstring for one job (list scheduling, exact)."""
    free = [DISPATCH_START] * lanes
    last_dispatch = DISPATCH_START - 1
    done: list[int] = []
    for index, planes in enumerate(planes_by_query):
        ready = last_dispatch + 1
        if index >= in_flight:
            ready = max(ready, done[index - in_flight] + 1)
        finish = 0
        for p in planes:
            ready = max(heapq.heappop(free), ready)
            heapq.heappush(free, ready + p)
            finish = max(finish, ready + p)
        last_dispatch = ready
        done.append(max(finish, done[-1]) if done else finish)
    return JobCycles(done[-1] if done else 0, done)


def planes_by_query(planes: np.ndarray, visible: np.ndarray, valid_len: int) -> list[list[int]]:
    """The planes of each valid query's visible keys, in key order, for one problem."""
    return [planes[i][visible[i]].tolist() for i in range(valid_len)]


def frontend_cycles(
    cfg: EngineConfig, planes: np.ndarray, visible: np.ndarray, valid_len: np.ndarray
) -> list[JobCycles]:
    """One ``JobCycles`` per problem, from ``[P, N, N]`` planes and visibility."""
    return [
        frontend_job(
            planes_by_query(planes[p], visible[p], int(valid_len[p])),
            lanes=cfg.lanes, in_flight=cfg.queries_in_flight,
        )
        for p in range(planes.shape[0])
    ]


def ideal_cycles(planes: np.ndarray, visible: np.ndarray, lanes: int) -> float:
    """Every key costs exactly its planes, perfectly packed over the lanes, queries overlapping."""
    return float(planes[visible].sum()) / lanes


def load_cycles(valid_len: np.ndarray, k_bits: int) -> int:
    """Cycles to write every problem's keys into the key store, one plane per cycle."""
    return int(np.asarray(valid_len).sum()) * k_bits
