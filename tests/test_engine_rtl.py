"""cocotb on the emitted engine Verilog under Icarus and Verilator: the regression cases with and
without stalls; probabilities, outputs and kept counts equal the golden model, and stall-free
per-query packet cycles and job cycles equal the cycle model."""

import pytest

from leopard.hw.config import preset
from leopard.hw.generate import verilog_text
from leopard.model import trace as trace_file
from leopard.verif import simulate
from leopard.verif.plan import make_plan
from leopard.verif.scenarios import regression_trace

CONFIGS = {
    "tiny": preset("tiny"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "small": preset("small"),
    "minilm": preset("minilm"),
    "tiny-narrow": preset("tiny").replace(lanes=1, v_lanes=1, queries_in_flight=2, status_stream=False),
}
CASES = [
    ("icarus", "tiny"),
    ("icarus", "small"),
    ("verilator", "tiny"),
    ("verilator", "small"),
    ("verilator", "minilm"),
    ("icarus", "small-skip"),
    ("verilator", "tiny-narrow"),
    pytest.param("icarus", "minilm", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("sim", "name"), CASES)
def test_engine_rtl(sim, name, tmp_path):
    cfg = CONFIGS[name]
    straight, causal = tmp_path / "straight.npz", tmp_path / "causal.npz"
    trace_file.save(regression_trace(cfg, seed=3), straight)
    trace_file.save(regression_trace(cfg, seed=4, causal=True), causal)
    plan = make_plan(cfg, [
        {"trace": str(straight)},
        {"trace": str(causal), "batches": 2},
        {"trace": str(straight), "idle": 0.3, "backpressure": 0.5, "batches": 3, "seed": 6,
         "modes": ["early_termination"]},
    ])
    top, source = verilog_text(cfg, "engine")
    results = simulate.run(simulate.build(top, source, sim), simulate.COCOTB_BENCH, plan)
    assert results["mismatches"] == 0, results["messages"]
    for run in results["runs"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
