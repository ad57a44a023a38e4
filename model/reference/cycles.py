"""Cycle model of the engine, exact for stall-free runs of the RTL: the QK front end alone
(``hw/rtl/frontend.py``) or the whole head (``hw/rtl/engine.py``).

Front end (scheduling policy):

- A job is one problem: its queries in order, each against its visible keys in index order.
- Cycle 0 is the cycle the host writes ``CTRL.start``; the first query is taken from the Q stream in
  cycle 1 and its first keys are handed to lanes in cycle ``DISPATCH_START = 2``.
- Each lane has a head register holding one waiting key. In every cycle, each lane whose head register
  is empty (it was empty at the start of the cycle) is handed the next key of the query held in the
  dispatch slot, lowest lane first.
- A lane takes its waiting key in the first cycle ``d`` after the handing in which it is idle or
  finishing its current key; a key that needs ``p`` planes is processed in cycles ``d+1 … d+p`` and
  its decision is reported in cycle ``d+p+1``. The head register is empty again from cycle ``d+1``.
- Keys of one query only are handed per cycle; the next query enters the slot in the cycle its
  predecessor's last key is handed and may be handed from the next cycle.
- A query completes in the cycle its last key's decision is reported, or with its predecessor if that
  is later.
- At most ``M = queries_in_flight`` queries are in flight: query ``i`` waits until query ``i − M`` is
  released (visible the cycle after): by the front end alone when it completes, by the back end
  when its softmax pass has read its last kept key.
- The front end's cycle count is the cycle in which its last query completes.

Back end, per query ``i`` with ``n`` kept keys and ``c = head_dim / v_lanes`` (stage docstrings in
``hw/rtl/softmax_pass.py`` and ``hw/rtl/normalizer.py``):

- its completion beat reaches the collector ``KEPT_FIFO_LATENCY`` cycles after it completes and is
  collected the cycle after that;
- the softmax pass starts it at ``s = max(collected, last issue of i−1, buffer free)`` (its result
  buffer is free the cycle after query ``i − B``'s last output beat, ``B = result_buffers``), issues
  ``max(n·c, 1)`` cycles and releases it the cycle after its last issue; the buffer is full
  ``PASS_LATENCY + 1`` cycles after it;
- the normalizer's lookup starts at ``max(full, previous lookup start + c + 1)`` and the buffer is
  ready ``c + 1`` cycles later; its packet starts at ``max(ready + 1, previous packet's last beat + 1)``
  and has ``max(n, 1)`` beats.
- The head's cycle count is the cycle of the last query's last beat.

Loading a key into the key store takes ``k_bits`` cycles (one plane written per cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.timing import (
    BITPARALLEL_DISPATCH_START,
    DISPATCH_START,
    KEPT_FIFO_LATENCY,
    PASS_LATENCY,
    bitparallel_latency,
)


@dataclass(frozen=True)
class JobCycles:
    """Timing of one job, in cycles after the ``start`` write."""

    cycles: int
    """Busy cycles of the job (the ``CYCLES`` counter)."""
    query_done: list[int]
    """Cycle in which each query completed (front end) or sent its packet's last beat (head)."""


class _BackEnd:
    """The back end's per-query recursion of the module docstring."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.groups = cfg.v_groups
        self.buffers = cfg.result_buffers
        self.last_issue = -1
        self.lookup = -(self.groups + 1)
        self.last_beat: list[int] = []

    def query(self, done: int, kept: int) -> tuple[int, int]:
        """(release visible, last beat) of the next query, completed in cycle ``done``."""
        index = len(self.last_beat)
        collected = done + KEPT_FIFO_LATENCY + 1
        buffer_free = self.last_beat[index - self.buffers] + 1 if index >= self.buffers else 0
        start = max(collected, self.last_issue, buffer_free)
        self.last_issue = start + max(kept * self.groups, 1)
        full = self.last_issue + PASS_LATENCY + 1
        self.lookup = max(full, self.lookup + self.groups + 1)
        ready = self.lookup + self.groups + 1
        first = max(ready + 1, self.last_beat[-1] + 1 if self.last_beat else 0)
        self.last_beat.append(first + max(kept, 1) - 1)
        return self.last_issue + 1, self.last_beat[-1]


def job_cycles(
    cfg: EngineConfig, planes_by_query: Sequence[Sequence[int]], kept_by_query: Sequence[int] | None = None
) -> JobCycles:
    """Simulate one job of an engine built from ``cfg`` (exact): the front end alone, or with
    ``kept_by_query`` the whole head (its back end takes ``v_groups`` cycles per kept key and has
    ``result_buffers`` result buffers)."""
    in_flight = cfg.queries_in_flight
    head_empty = [DISPATCH_START] * cfg.lanes
    lane_free = [DISPATCH_START] * cfg.lanes
    slot_ready = DISPATCH_START
    done: list[int] = []
    released: list[int] = []
    finished: list[int] = []
    back = _BackEnd(cfg) if kept_by_query is not None else None
    for index, planes in enumerate(planes_by_query):
        cycle = slot_ready
        if index >= in_flight:
            cycle = max(cycle, released[index - in_flight])
        waiting = list(planes)
        reported = 0
        while True:
            for lane in range(cfg.lanes):
                if waiting and head_empty[lane] <= cycle:
                    taken = max(cycle + 1, lane_free[lane])
                    lane_free[lane] = taken + waiting.pop(0)
                    head_empty[lane] = taken + 1
                    reported = max(reported, lane_free[lane] + 1)
            if not waiting:
                break
            cycle = max(cycle + 1, min(head_empty))
        slot_ready = cycle + 1
        done.append(max(reported, done[-1]) if done else reported)
        if back is None:
            released.append(done[-1] + 1)
            finished.append(done[-1])
        else:
            release, last_beat = back.query(done[-1], kept_by_query[index])
            released.append(release)
            finished.append(last_beat)
    return JobCycles(finished[-1] if finished else 0, finished)


def bitparallel_cycles(cfg: EngineConfig, keys_by_query: Sequence[int], *, split: bool = False) -> JobCycles:
    """One job of the dense bit-parallel unit (``hw/rtl/bitparallel.py``; ``split``: its LUT variant),
    exact: from cycle
    ``BITPARALLEL_DISPATCH_START`` one key per cycle, in query order, each decided
    ``bitparallel_latency`` cycles after its dispatch; a query completes with its last key."""
    latency = bitparallel_latency(cfg, split=split)
    dispatched = BITPARALLEL_DISPATCH_START - 1
    done = []
    for keys in keys_by_query:
        dispatched += keys
        done.append(dispatched + latency)
    return JobCycles(done[-1] if done else 0, done)


def planes_by_query(planes: np.ndarray, visible: np.ndarray, valid_len: int) -> list[list[int]]:
    """The planes of each valid query's visible keys, in key order, for one problem."""
    return [planes[i][visible[i]].tolist() for i in range(valid_len)]
