"""The front-end testbench: drives the register bus and the K/Q streams, collects the kept and status
streams, with optional random idle cycles on inputs and back-pressure on outputs.

It runs on any ``SimAccess`` (Amaranth's simulator or cocotb on the emitted Verilog).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.regmap import register_map

from .access import SimAccess
from .packing import decode, encode


@dataclass(frozen=True)
class Job:
    """One job: a batch of queries of one problem against its resident keys."""

    queries: np.ndarray
    """``[Q, D]`` query vectors, positions ``first … first+Q−1``."""
    keys: int
    first: int = 0
    causal: bool = False
    dense: bool = False
    slot: int = 0


@dataclass
class JobResult:
    """What the RTL produced for one job (query indices are absolute positions)."""

    cycles: int
    kept_count: int
    planes_count: int
    queries_done: int
    status: dict[tuple[int, int], tuple[int, bool]] = field(default_factory=dict)
    """``(query, key) → (planes, kept)`` for every decided key."""
    kept: dict[tuple[int, int], int] = field(default_factory=dict)
    """``(query, key) → score`` for every kept key."""
    completed: int = 0
    """Query completions signalled on the kept stream."""
    duplicates: int = 0
    """Keys reported twice (always a fault)."""


DRAIN_CYCLES = 4
"""Cycles with the engine idle and nothing offered on the outputs after which a job is over (more than
the output FIFOs' write-to-read latency)."""


class FrontEndBench:
    """Cycle-level driver of the ``FrontEnd`` top (``hw/frontend.py``)."""

    def __init__(
        self,
        cfg: EngineConfig,
        sim: SimAccess,
        *,
        seed: int = 0,
        idle: float = 0.0,
        backpressure: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.sim = sim
        self.regs = register_map(cfg)
        self.rng = random.Random(seed)
        self.idle = idle
        self.backpressure = backpressure
        self._query = layouts.query(cfg)
        self._key = layouts.key_beat(cfg)
        self._kept = layouts.kept_beat(cfg)
        self._status = layouts.status_beat(cfg)
        self.cycles_run = 0

    async def cycle(self) -> None:
        await self.sim.settle()
        await self.next_cycle()

    async def next_cycle(self) -> None:
        self.cycles_run += 1
        await self.sim.next_cycle()

    async def reset_inputs(self) -> None:
        for name in ("bus__w_en", "bus__r_en", "q__valid", "k__valid"):
            self.sim.set(name, 0)
        self.sim.set("kept__ready", 1)
        if self.cfg.status_stream:
            self.sim.set("status__ready", 1)
        await self.cycle()

    async def write(self, name: str, value: int, index: int = 0) -> None:
        register = self.regs[name]
        self.sim.set("bus__addr", register.offset + index)
        self.sim.set("bus__w_data", value & ((1 << self.regs.data_width) - 1))
        self.sim.set("bus__w_en", 1)
        await self.cycle()
        self.sim.set("bus__w_en", 0)

    async def read(self, name: str, index: int = 0) -> int:
        self.sim.set("bus__addr", self.regs[name].offset + index)
        self.sim.set("bus__r_en", 1)
        await self.cycle()
        self.sim.set("bus__r_en", 0)
        return self.sim.get("bus__r_data")

    async def program(self, slot: int, threshold: int, scale_word: int = 0) -> None:
        await self.write("THRESHOLD", threshold, slot)
        await self.write("SCALE", scale_word, slot)

    async def load_keys(self, keys: np.ndarray) -> None:
        """Stream ``keys[j]`` into key-store row ``j``, with random idle cycles."""
        pending = deque(range(len(keys)))
        while pending:
            offer = self.rng.random() >= self.idle
            if offer:
                j = pending[0]
                self.sim.set("k__payload", encode(self._key, {"index": j, "key": keys[j].tolist()}))
            self.sim.set("k__valid", int(offer))
            await self.sim.settle()
            if offer and self.sim.get("k__ready"):
                pending.popleft()
            await self.next_cycle()
        self.sim.set("k__valid", 0)

    async def run(self, job: Job) -> JobResult:
        """Program the job registers, start it, feed its queries, collect every output until idle."""
        await self.write("MODE", int(job.dense) | int(job.causal) << 1)
        await self.write("JOB_KEYS", job.keys)
        await self.write("JOB_QUERIES", len(job.queries))
        await self.write("JOB_FIRST", job.first)
        await self.write("JOB_SLOT", job.slot)
        result = JobResult(0, 0, 0, 0)
        pending = deque(range(len(job.queries)))
        started = False
        quiet = 0
        while quiet < DRAIN_CYCLES:
            offer = bool(pending) and self.rng.random() >= self.idle
            if offer:
                self.sim.set("q__payload", encode(self._query, job.queries[pending[0]].tolist()))
            self.sim.set("q__valid", int(offer))
            self._set_ready()
            if not started:
                self.sim.set("bus__addr", self.regs["CTRL"].offset)
                self.sim.set("bus__w_data", 1)
                self.sim.set("bus__w_en", 1)
            await self.sim.settle()
            if offer and self.sim.get("q__ready"):
                pending.popleft()
            self._collect(job, result)
            busy = self.sim.get("busy")
            draining = self.sim.get("kept__valid") or (
                self.cfg.status_stream and self.sim.get("status__valid")
            )
            await self.next_cycle()
            if not started:
                self.sim.set("bus__w_en", 0)
                started = True
            quiet = quiet + 1 if not (busy or draining or pending) else 0
        if await self.read("STATUS") & 0b100:
            raise ValueError("the engine refused the job (STATUS.error)")
        result.cycles = await self.read("CYCLES")
        result.kept_count = await self.read("KEPT")
        result.planes_count = await self.read("PLANES")
        result.queries_done = await self.read("QUERIES_DONE")
        return result

    def _set_ready(self) -> None:
        self.sim.set("kept__ready", int(self.rng.random() >= self.backpressure))
        if self.cfg.status_stream:
            self.sim.set("status__ready", int(self.rng.random() >= self.backpressure))

    def _collect(self, job: Job, result: JobResult) -> None:
        if self.sim.get("kept__valid") and self.sim.get("kept__ready"):
            beat = decode(self._kept, self.sim.get("kept__payload"))
            result.completed += beat["done"]
            for entry in beat["keys"]:
                if entry["valid"]:
                    where = (job.first + entry["query"], entry["key"])
                    result.duplicates += where in result.kept
                    result.kept[where] = entry["score"]
        if self.cfg.status_stream and self.sim.get("status__valid") and self.sim.get("status__ready"):
            beat = decode(self._status, self.sim.get("status__payload"))
            for entry in beat["keys"]:
                if entry["valid"]:
                    where = (job.first + entry["query"], entry["key"])
                    result.duplicates += where in result.status
                    result.status[where] = (entry["planes"], bool(entry["kept"]))
