"""The host driver: programs thresholds and scales per (layer, head), loads keys and values, runs
attention jobs and reads the counters, through a backend that is either the golden model
(``GoldenBackend``) or the simulated RTL (``leopard.verif.bench.Bench`` under Amaranth's simulator or
cocotb). The API is async so it runs unchanged inside a cocotb test; elsewhere use ``asyncio.run``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from leopard.hw import fixedpoint
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.regmap import register_map
from leopard.sw.job import COUNTERS, Job, JobResult


class Backend(Protocol):
    """Register access, stream loading and job execution of one engine."""

    async def write(self, name: str, value: int, index: int = 0) -> None: ...

    async def read(self, name: str, index: int = 0) -> int: ...

    async def load(self, stream: str, rows: np.ndarray) -> None: ...

    async def run(self, job: Job) -> JobResult: ...


@dataclass(frozen=True)
class AttentionResult:
    """One job's outputs: integer vectors (``out_frac_bits`` fraction bits, ``v`` units),
    probabilities (``prob_frac_bits`` fraction bits, 0 for pruned keys), keys kept per query, and the
    job's counters."""

    outputs: np.ndarray
    """``[Q, D]``."""
    probabilities: np.ndarray
    """``[Q, keys]``."""
    kept: np.ndarray
    """``[Q]``."""
    cycles: int
    planes: int

    def output_values(self, cfg: EngineConfig) -> np.ndarray:
        """The outputs as floats in ``v`` units."""
        return self.outputs / float(1 << cfg.out_frac_bits)


class Driver:
    """Drives one engine built from ``cfg`` through ``backend``."""

    def __init__(self, cfg: EngineConfig, backend: Backend) -> None:
        self.cfg = cfg
        self.backend = backend
        self.regmap = register_map(cfg)

    async def check_identity(self) -> None:
        """Refuse an engine whose identification or build parameters differ from ``cfg``'s."""
        for name, expected in self.regmap.constants.items():
            found = await self.backend.read(name)
            if found != expected:
                raise LeopardError(
                    f"the engine's {name} register reads 0x{found:X}, expected 0x{expected:X}: "
                    "it was built from another config"
                )

    async def program(self, slot: int, threshold: int, scale: float) -> None:
        """Threshold (score domain) and softmax scale of one (layer, head) slot."""
        cfg = self.cfg
        if not 0 <= slot < cfg.threshold_regs:
            raise LeopardError(f"slot {slot} outside [0, {cfg.threshold_regs - 1}]")
        if not cfg.threshold_min <= threshold <= cfg.threshold_max:
            raise LeopardError(
                f"threshold {threshold} outside the register range [{cfg.threshold_min}, {cfg.threshold_max}]"
            )
        await self.backend.write("THRESHOLD", threshold, slot)
        await self.backend.write("SCALE", fixedpoint.encode_scale(cfg, scale).word(cfg), slot)

    async def load(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Write keys and values into rows ``0 … len−1`` of the stores."""
        if len(keys) != len(values) or len(keys) > self.cfg.max_seq_len:
            raise LeopardError(
                f"{len(keys)} keys and {len(values)} values: need equal counts up to {self.cfg.max_seq_len}"
            )
        await self.backend.load("k", np.asarray(keys))
        await self.backend.load("v", np.asarray(values))

    async def attention(
        self, queries: np.ndarray, *, keys: int, slot: int, first: int = 0, causal: bool = False,
        dense: bool = False,
    ) -> AttentionResult:
        """Run the queries (positions ``first …``) against the first ``keys`` resident keys."""
        job = Job(queries=np.asarray(queries), keys=keys, first=first, causal=causal, dense=dense, slot=slot)
        result = await self.backend.run(job)
        count = len(job.queries)
        probabilities = np.zeros((count, keys), np.int64)
        for (query, key), value in result.probs.items():
            probabilities[query - first, key] = value
        return AttentionResult(
            outputs=np.array([result.outputs[first + t] for t in range(count)], np.int64),
            probabilities=probabilities,
            kept=np.array([result.packet_kept[first + t] for t in range(count)], np.int64),
            cycles=result.cycles,
            planes=result.planes_count,
        )

    async def counters(self) -> dict[str, int]:
        """``CYCLES``, ``KEPT``, ``PLANES`` and ``QUERIES_DONE`` of the last job."""
        return {name: await self.backend.read(name) for name in COUNTERS}
