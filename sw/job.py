"""One job of the engine as the host sees it (its inputs and everything it produced), shared by the
driver's backends: the golden model (``sw/golden_backend.py``) and the simulated RTL (``verif/bench.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leopard.hw.regmap import RegisterMap


@dataclass(frozen=True)
class Job:
    """One job: a batch of queries of one problem against its resident keys (and values)."""

    queries: np.ndarray
    """``[Q, D]`` query vectors, positions ``first … first+Q−1``."""
    keys: int
    first: int = 0
    causal: bool = False
    dense: bool = False
    slot: int = 0


@dataclass
class JobResult:
    """What the RTL produced for one job (query indices are absolute positions, cycles count from the
    ``start`` write)."""

    cycles: int = 0
    kept_count: int = 0
    planes_count: int = 0
    queries_done: int = 0
    status: dict[tuple[int, int], tuple[int, bool]] = field(default_factory=dict)
    """``(query, key) → (planes, kept)`` for every decided key (status stream)."""
    kept: dict[tuple[int, int], int] = field(default_factory=dict)
    """``(query, key) → score`` for every kept key (front end's kept stream)."""
    completed: int = 0
    """Query completions signalled on the kept stream (front end)."""
    probs: dict[tuple[int, int], int] = field(default_factory=dict)
    """``(query, key) → probability`` (engine's result packets)."""
    outputs: dict[int, list[int]] = field(default_factory=dict)
    """``query → output vector`` (engine)."""
    packet_kept: dict[int, int] = field(default_factory=dict)
    packet_cycle: dict[int, int] = field(default_factory=dict)
    """``query → cycle`` of its packet's last beat (engine)."""
    order: list[int] = field(default_factory=list)
    duplicates: int = 0
    """Keys or queries reported twice (always a fault)."""

    def take(self, stream: str, job: Job, beat: dict[str, Any], cycle: int | None = None) -> None:
        """Record one decoded beat of the ``kept``, ``status`` or ``out`` stream of ``job``, taken
        ``cycle`` cycles after its start (packet cycles are recorded when given)."""
        if stream in ("kept", "status"):
            if stream == "kept":
                self.completed += beat["done"]
            for entry in beat["keys"]:
                if entry["valid"]:
                    where = (job.first + entry["query"], entry["key"])
                    seen: dict[tuple[int, int], Any] = self.kept if stream == "kept" else self.status
                    self.duplicates += where in seen
                    seen[where] = (entry["score"] if stream == "kept"
                                   else (entry["planes"], bool(entry["kept"])))
            return
        query = job.first + beat["query"]
        if beat["has_key"]:
            self.duplicates += (query, beat["key"]) in self.probs
            self.probs[query, beat["key"]] = beat["prob"]
        if beat["last"]:
            self.duplicates += query in self.outputs
            self.outputs[query] = beat["vector"]
            self.packet_kept[query] = beat["kept"]
            if cycle is not None:
                self.packet_cycle[query] = cycle
            self.order.append(query)


COUNTERS = {
    "CYCLES": "cycles", "KEPT": "kept_count", "PLANES": "planes_count", "QUERIES_DONE": "queries_done",
}
"""Registers read after a job, and the ``JobResult`` field each fills."""


def job_registers(regmap: RegisterMap, job: Job) -> list[tuple[str, int]]:
    """The register writes that describe ``job``, in the order a host makes them before ``CTRL.start``."""
    return [
        ("MODE", regmap["MODE"].pack(dense=job.dense, causal=job.causal)),
        ("JOB_KEYS", job.keys),
        ("JOB_QUERIES", len(job.queries)),
        ("JOB_FIRST", job.first),
        ("JOB_SLOT", job.slot),
    ]
