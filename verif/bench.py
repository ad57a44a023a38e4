"""A cycle-by-cycle Python bench of the front-end and whole-engine tops: drives the register bus and the
K/V/Q streams and collects the output streams, one call per register access or job. It is the host
driver's RTL backend (``sw/driver.py``); workloads run on the trace player (``docs/verification.md``).

It runs on any ``SimAccess`` (Amaranth's simulator or cocotb on the emitted Verilog).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.packing import decode, encode
from leopard.hw.ports import TOPS
from leopard.hw.regmap import register_map
from leopard.sw.job import COUNTERS, Job, JobResult, job_registers
from leopard.verif.access import SimAccess
from leopard.verif.player import DRAIN_CYCLES


class Bench:
    """Cycle-level driver of ``FrontEnd`` (``top="frontend"``) or ``Engine`` (``top="engine"``)."""

    def __init__(
        self,
        cfg: EngineConfig,
        sim: SimAccess,
        *,
        top: str = "engine",
    ) -> None:
        if top not in TOPS:
            raise ValueError(f"unknown top {top!r}")
        self.cfg = cfg
        self.sim = sim
        self.top = top
        self.regs = register_map(cfg)
        self.cycles_run = 0
        self._outputs = ("out",) if top == "engine" else ("kept",)
        if cfg.status_stream:
            self._outputs += ("status",)
        self._layouts = {
            "q": layouts.query(cfg), "k": layouts.key_beat(cfg), "v": layouts.value_beat(cfg),
            "kept": layouts.kept_beat(cfg), "status": layouts.status_beat(cfg),
            "out": layouts.output_packet(cfg),
        }

    async def cycle(self) -> None:
        await self.sim.settle()
        await self.next_cycle()

    async def next_cycle(self) -> None:
        self.cycles_run += 1
        await self.sim.next_cycle()

    async def reset_inputs(self) -> None:
        inputs = ["bus__w_en", "bus__r_en", "q__valid", "k__valid"]
        if self.top == "engine":
            inputs.append("v__valid")
        for name in inputs:
            self.sim.set(name, 0)
        for name in self._outputs:
            self.sim.set(f"{name}__ready", 1)
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

    async def program(self, slot: int, threshold: int, scale_word: int) -> None:
        await self.write("THRESHOLD", threshold, slot)
        await self.write("SCALE", scale_word, slot)

    async def load(self, stream: str, rows: np.ndarray) -> None:
        """Stream ``rows[j]`` into row ``j`` of the key (``k``) or value (``v``) store."""
        field_name = "key" if stream == "k" else "value"
        pending = deque(range(len(rows)))
        self.sim.set(f"{stream}__valid", 1)
        while pending:
            j = pending[0]
            self.sim.set(f"{stream}__payload",
                         encode(self._layouts[stream], {"index": j, field_name: rows[j].tolist()}))
            await self.sim.settle()
            if self.sim.get(f"{stream}__ready"):
                pending.popleft()
            await self.next_cycle()
        self.sim.set(f"{stream}__valid", 0)

    async def run(self, job: Job) -> JobResult:
        """Program the job registers, start it, feed its queries, collect every output until idle."""
        for name, value in job_registers(self.regs, job):
            await self.write(name, value)
        result = JobResult()
        pending = deque(range(len(job.queries)))
        cycle = 0
        quiet = 0
        self.sim.set("bus__addr", self.regs["CTRL"].offset)
        self.sim.set("bus__w_data", self.regs["CTRL"].pack(start=1))
        self.sim.set("bus__w_en", 1)
        shown, offering = -1, False
        while quiet < DRAIN_CYCLES:
            offer = bool(pending)
            if offer and pending[0] != shown:
                shown = pending[0]
                self.sim.set("q__payload", encode(self._layouts["q"], job.queries[shown].tolist()))
            if offer != offering:
                offering = offer
                self.sim.set("q__valid", int(offer))
            await self.sim.settle()
            if offer and self.sim.get("q__ready"):
                pending.popleft()
            offered = False
            for name in self._outputs:
                if self.sim.get(f"{name}__valid"):
                    offered = True
                    beat = decode(self._layouts[name], self.sim.get(f"{name}__payload"))
                    result.take(name, job, beat, cycle)
            busy = self.sim.get("busy")
            await self.next_cycle()
            if cycle == 0:
                self.sim.set("bus__w_en", 0)
            cycle += 1
            quiet = quiet + 1 if not (busy or offered or pending) else 0
        self.sim.set("q__valid", 0)
        for name in self._outputs:
            self.sim.set(f"{name}__ready", 1)
        if self.regs["STATUS"].unpack(await self.read("STATUS"))["error"]:
            raise ValueError("the engine refused the job (STATUS.error)")
        for register, name in COUNTERS.items():
            setattr(result, name, await self.read(register))
        return result
