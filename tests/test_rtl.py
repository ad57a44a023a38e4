"""cocotb on the emitted Verilog (the QK front end alone, the dense bit-parallel unit and the whole
engine) under Icarus and Verilator: the regression cases with and without stalls. Every decision, plane count, score,
probability, output and counter equals the golden model; stall-free job and per-query cycles equal
the cycle model."""

import pytest

from leopard.hw.config import preset
from leopard.verif.scenarios import regression_run

CONFIGS = {
    "tiny": preset("tiny"),
    "small": preset("small"),
    "minilm": preset("minilm"),
    "smollm2": preset("smollm2"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "tiny-bare": preset("tiny").replace(
        early_termination=False, status_stream=False, lanes=3, queries_in_flight=2
    ),
    "tiny-narrow": preset("tiny").replace(lanes=1, v_lanes=1, queries_in_flight=2, status_stream=False),
    "tiny-fifo4": preset("tiny").replace(fifo_depth=4, status_stream=False),
}
CASES = [
    (top, sim, name)
    for top in ("frontend", "engine")
    for sim, name in (("icarus", "tiny"), ("icarus", "small"), ("verilator", "tiny"), ("verilator", "small"),
                      ("verilator", "minilm"))
] + [
    ("bitparallel", "icarus", "small"),
    ("bitparallel-lut", "icarus", "small"),
    ("bitparallel-lut", "verilator", "small"),
    ("bitparallel", "verilator", "minilm"),
    ("bitparallel-lut", "verilator", "minilm"),
    ("bitparallel", "verilator", "tiny-fifo4"),
    ("frontend", "verilator", "small-skip"),
    ("frontend", "verilator", "tiny-bare"),
    ("frontend", "verilator", "tiny-fifo4"),
    ("engine", "icarus", "small-skip"),
    ("engine", "verilator", "tiny-narrow"),
    pytest.param("frontend", "icarus", "minilm", marks=pytest.mark.slow),
    pytest.param("engine", "icarus", "minilm", marks=pytest.mark.slow),
    pytest.param("frontend", "verilator", "smollm2", marks=pytest.mark.slow),
    pytest.param("engine", "verilator", "smollm2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("top", "sim", "name"), CASES)
def test_rtl(top, sim, name):
    cfg = CONFIGS[name]
    results = regression_run(cfg, top, sim)
    assert results["mismatches"] == 0, results["messages"]
    for run in results["segments"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
