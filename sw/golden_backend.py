"""A driver backend that computes with the golden and cycle models instead of hardware: the same
registers, streams and job results as the engine, with no simulator."""

from __future__ import annotations

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.regmap import register_map
from leopard.model import cycles, golden

from .job import COUNTERS, Job, JobResult, job_registers


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

    def _signed(self, name: str, index: int) -> int:
        value = self.registers.get((name, index), 0)
        width = self.regmap[name].width
        return value - (1 << width) if value >> (width - 1) else value

    async def run(self, job: Job) -> JobResult:
        """The job's results from the golden model, its cycles and packet times from the cycle model."""
        cfg = self.cfg
        for name, value in job_registers(job):
            await self.write(name, value)
        scale = self.registers.get(("SCALE", job.slot), 0)
        problems = golden.Problems(
            q=np.asarray(job.queries, np.int64)[None], k=self.rows["k"][None, : job.keys],
            v=self.rows["v"][None, : job.keys], valid_len=np.array([job.keys]), causal=job.causal,
            threshold=np.array([self._signed("THRESHOLD", job.slot)]),
            scale_mantissa=np.array([scale & ((1 << cfg.scale_mantissa_bits) - 1)]),
            scale_shift=np.array([scale >> cfg.scale_mantissa_bits]),
        )
        positions = job.first + np.arange(len(job.queries))
        visible = np.ones((1, len(job.queries), job.keys), bool)
        if job.causal:
            visible &= np.arange(job.keys)[None, None, :] <= positions[None, :, None]
        result = golden.evaluate(cfg, problems, visible, dense=job.dense)
        kept = result.kept[0].sum(axis=-1)
        timing = cycles.job_cycles(
            [result.planes[0, t][visible[0, t]].tolist() for t in range(len(job.queries))],
            lanes=cfg.lanes, in_flight=cfg.queries_in_flight, kept_by_query=kept.tolist(),
            groups=cfg.v_groups, buffers=cfg.result_buffers,
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
        self.registers["STATUS", 0] = 0b010
        return out
