"""The cycle model of ``cycles.py`` compiled with Numba: the same key handing and back-end recursion,
run over a batch of problems at machine speed (about 10 ns per key). ``cycles.job_cycles`` stays the
readable definition; ``tests/test_cycles.py`` checks that the two give equal counts on random jobs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from leopard.hw.config import EngineConfig
from leopard.hw.timing import DISPATCH_START, KEPT_FIFO_LATENCY, PASS_LATENCY


@njit(cache=True, nogil=True)
def _next_visible(visible: np.ndarray, query: int, key: int) -> int:
    """The first visible key of ``query`` at or after ``key`` (the row length when there is none)."""
    while key < visible.shape[1] and not visible[query, key]:
        key += 1
    return key


@njit(cache=True, nogil=True)
def _job(planes: np.ndarray, visible: np.ndarray, kept: np.ndarray, valid_len: int,
         lanes: int, in_flight: int, groups: int, buffers: int, head: bool) -> int:
    head_empty = np.full(lanes, DISPATCH_START, np.int64)
    lane_free = np.full(lanes, DISPATCH_START, np.int64)
    released = np.zeros(max(valid_len, 1), np.int64)
    last_beat = np.zeros(max(valid_len, 1), np.int64)
    slot_ready = DISPATCH_START
    done = 0
    finished = 0
    last_issue = -1
    lookup = -(groups + 1)
    for i in range(valid_len):
        cycle = slot_ready
        if i >= in_flight:
            cycle = max(cycle, released[i - in_flight])
        reported = 0
        j = _next_visible(visible, i, 0)
        while True:
            for lane in range(lanes):
                if j < planes.shape[1] and head_empty[lane] <= cycle:
                    taken = max(cycle + 1, lane_free[lane])
                    lane_free[lane] = taken + planes[i, j]
                    head_empty[lane] = taken + 1
                    reported = max(reported, lane_free[lane] + 1)
                    j = _next_visible(visible, i, j + 1)
            if j == planes.shape[1]:
                break
            cycle = max(cycle + 1, head_empty.min())
        slot_ready = cycle + 1
        done = reported if i == 0 else max(reported, done)
        if not head:
            released[i] = done + 1
            finished = done
            continue
        count = kept[i]
        collected = done + KEPT_FIFO_LATENCY + 1
        buffer_free = last_beat[i - buffers] + 1 if i >= buffers else 0
        start = max(collected, last_issue, buffer_free)
        last_issue = start + max(count * groups, 1)
        lookup = max(last_issue + PASS_LATENCY + 1, lookup + groups + 1)
        first = lookup + groups + 2
        if i > 0:
            first = max(first, last_beat[i - 1] + 1)
        last_beat[i] = first + max(count, 1) - 1
        released[i] = last_issue + 1
        finished = last_beat[i]
    return finished


@njit(cache=True, nogil=True)
def _jobs(planes: np.ndarray, visible: np.ndarray, kept: np.ndarray, valid_len: np.ndarray,
          lanes: int, in_flight: int, groups: int, buffers: int, head: bool) -> np.ndarray:
    out = np.zeros(planes.shape[0], np.int64)
    for p in range(planes.shape[0]):
        out[p] = _job(planes[p], visible[p], kept[p], valid_len[p], lanes, in_flight, groups, buffers, head)
    return out


def problem_cycles(
    cfg: EngineConfig, planes: np.ndarray, visible: np.ndarray, valid_len: np.ndarray,
    kept: np.ndarray | None = None,
) -> np.ndarray:
    """``[P]`` cycles of each problem's job from ``[P, N, N]`` planes and visibility: the front end alone,
    or with the ``[P, N, N]`` kept mask the whole head (each equal to ``cycles.job_cycles(...).cycles`` of
    that problem's visible keys in query order)."""
    counts = np.zeros(planes.shape[:2], np.int64) if kept is None else kept.sum(axis=-1, dtype=np.int64)
    return _jobs(np.ascontiguousarray(planes, np.int64), np.ascontiguousarray(visible, np.bool_), counts,
                 np.asarray(valid_len, np.int64), cfg.lanes, cfg.queries_in_flight, cfg.v_groups,
                 cfg.result_buffers, kept is not None)
