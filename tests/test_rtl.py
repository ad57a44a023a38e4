"""cocotb on the emitted Verilog (the QK front end alone and the whole engine) under Icarus and
Verilator: the regression cases with and without stalls. Every decision, plane count, score,
probability, output and counter equals the golden model; stall-free job and per-query cycles equal
the cycle model."""

import pytest

from leopard.hw.config import preset
from leopard.hw.rtl.generate import verilog_text
from leopard.model.reference import trace as trace_file
from leopard.verif import simulate
from leopard.verif.plan import make_plan
from leopard.verif.scenarios import regression_trace

CONFIGS = {
    "tiny": preset("tiny"),
    "small": preset("small"),
    "minilm": preset("minilm"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "tiny-bare": preset("tiny").replace(
        early_termination=False, status_stream=False, lanes=3, queries_in_flight=2
    ),
    "tiny-narrow": preset("tiny").replace(lanes=1, v_lanes=1, queries_in_flight=2, status_stream=False),
}
CASES = [
    (top, sim, name)
    for top in ("frontend", "engine")
    for sim, name in (("icarus", "tiny"), ("icarus", "small"), ("verilator", "tiny"), ("verilator", "small"),
                      ("verilator", "minilm"))
] + [
    ("frontend", "verilator", "small-skip"),
    ("frontend", "verilator", "tiny-bare"),
    ("engine", "icarus", "small-skip"),
    ("engine", "verilator", "tiny-narrow"),
    pytest.param("frontend", "icarus", "minilm", marks=pytest.mark.slow),
    pytest.param("engine", "icarus", "minilm", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("top", "sim", "name"), CASES)
def test_rtl(top, sim, name, tmp_path):
    cfg = CONFIGS[name]
    straight, causal = tmp_path / "straight.npz", tmp_path / "causal.npz"
    trace_file.save(regression_trace(cfg, seed=1), straight)
    trace_file.save(regression_trace(cfg, seed=2, causal=True), causal)
    plan = make_plan(cfg, top=top, runs=[
        {"trace": str(straight)},
        {"trace": str(causal), "batches": 2},
        {"trace": str(straight), "idle": 0.3, "backpressure": 0.5, "batches": 3, "seed": 4,
         "modes": ["early_termination"]},
    ])
    module, source = verilog_text(cfg, top)
    results = simulate.run(simulate.build(module, source, sim), simulate.COCOTB_BENCH, plan)
    assert results["mismatches"] == 0, results["messages"]
    for run in results["runs"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
