"""A driver backend that computes with the golden and cycle models instead of hardware: the same
registers, streams and job results as the engine, with no simulator."""

from __future__ import annotations

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.fixedpoint import ScaleRegister
from leopard.hw.regmap import register_map
from leopard.model.reference import cycles, golden
from leopard.sw.job import COUNTERS, Job, JobResult, job_registers


class GoldenBackend:
    """Register file, key and value stores and jobs of an engine built from ``cfg``, modelled."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.regmap = register_map(cfg)
        self.registers: dict[tuple[str, int], int] = {}
        self.rows = {
            "k": np.zeros((cfg.max_seq_len, cfg.head_dim), np.int64),
            "v": np.zeros((cfg.max_seq_len, cfg.head_dim), np.int64),
        }

    async def write(self, name: str, value: int, index: int = 0) -> None:
        register = self.regmap[name]
        if register.access == "rw":
            self.registers[name, index] = value & ((1 << register.width) - 1)

    async def read(self, name: str, index: int = 0) -> int:
        if name in self.regmap.constants:
            return self.regmap.constants[name]
        return self.registers.get((name, index), 0)

    async def load(self, stream: str, rows: np.ndarray) -> None:
        self.rows[stream][: len(rows)] = rows

    def _threshold(self, slot: int) -> int:
        return self.regmap["THRESHOLD"].unpack(self.registers.get(("THRESHOLD", slot), 0))["threshold"]

    async def run(self, job: Job) -> JobResult:
        """The job's results from the golden model, its cycles and packet times from the cycle model."""
        cfg = self.cfg
        for name, value in job_registers(self.regmap, job):
            await self.write(name, value)
        scale = ScaleRegister.from_word(cfg, self.registers.get(("SCALE", job.slot), 0))
        problems = golden.Problems(
            q=np.asarray(job.queries, np.int64)[None], k=self.rows["k"][None, : job.keys],
            v=self.rows["v"][None, : job.keys], valid_len=np.array([job.keys]), causal=job.causal,
            threshold=np.array([self._threshold(job.slot)]),
            scale_mantissa=np.array([scale.mantissa]), scale_shift=np.array([scale.shift]),
        )
        positions = job.first + np.arange(len(job.queries))
        visible = np.ones((1, len(job.queries), job.keys), bool)
        if job.causal:
            visible &= np.arange(job.keys)[None, None, :] <= positions[None, :, None]
        result = golden.evaluate(cfg, problems, visible, dense=job.dense)
        kept = result.kept[0].sum(axis=-1)
        timing = cycles.job_cycles(
            cfg, [result.planes[0, t][visible[0, t]].tolist() for t in range(len(job.queries))], kept.tolist()
        )
        out = JobResult(
            cycles=timing.cycles, kept_count=int(kept.sum()),
            planes_count=int(result.planes[0].sum()), queries_done=len(job.queries),
        )
        for t, position in enumerate(positions.tolist()):
            for key in np.flatnonzero(visible[0, t]).tolist():
                if cfg.status_stream:
                    out.status[position, key] = (int(result.planes[0, t, key]), bool(result.kept[0, t, key]))
                if result.kept[0, t, key]:
                    out.probs[position, key] = int(result.probs[0, t, key])
            out.outputs[position] = result.out[0, t].tolist()
            out.packet_kept[position] = int(kept[t])
            out.packet_cycle[position] = timing.query_done[t]
            out.order.append(position)
        for register, name in COUNTERS.items():
            self.registers[register, 0] = getattr(out, name)
        self.registers["STATUS", 0] = self.regmap["STATUS"].pack(done=1)
        return out
