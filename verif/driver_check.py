"""The host driver run on the simulated RTL and on the golden backend with the same jobs: every
output, probability, kept count and counter must be identical."""

from __future__ import annotations

from typing import Any

import numpy as np

from leopard.model.reference.trace import Trace
from leopard.sw.driver import AttentionResult, Backend, Driver
from leopard.sw.golden_backend import GoldenBackend


async def drive(driver: Driver, trace: Trace) -> list[tuple[AttentionResult, dict[str, int]]]:
    """Each problem of ``trace`` through ``driver``: early termination, then dense, then (when long
    enough) its second half of queries as a job of its own."""
    results = []
    for p in range(trace.count):
        n = int(trace.valid_len[p])
        slot = p % trace.config.threshold_regs
        await driver.program(slot, int(trace.threshold[p]), float(trace.scale[p]))
        await driver.load(trace.k[p, :n], trace.v[p, :n])
        jobs = [(0, n, False), (0, n, True)] + ([(n // 2, n, False)] if n > 1 else [])
        for first, end, dense in jobs:
            result = await driver.attention(
                trace.q[p, first:end], keys=n, slot=slot, first=first, causal=trace.causal, dense=dense
            )
            results.append((result, await driver.counters()))
    return results


async def compare_backends(trace: Trace, backend: Backend) -> dict[str, Any]:
    """Differences between ``backend`` and the golden backend on every job of ``drive``."""
    driver = Driver(trace.config, backend)
    await driver.check_identity()
    reference = await drive(Driver(trace.config, GoldenBackend(trace.config)), trace)
    measured = await drive(driver, trace)
    differences = []
    pairs = zip(reference, measured, strict=True)
    for index, ((want, want_counters), (got, got_counters)) in enumerate(pairs):
        for name in ("outputs", "probabilities", "kept"):
            if not np.array_equal(getattr(want, name), getattr(got, name)):
                differences.append(f"job {index}: {name} differ")
        if (want.cycles, want.planes, want_counters) != (got.cycles, got.planes, got_counters):
            differences.append(f"job {index}: counters {got_counters}, expected {want_counters}")
    return {"jobs": len(reference), "differences": differences}
