"""cocotb on the emitted front-end Verilog, under Icarus and Verilator: the regression cases with and
without stalls, checked against the golden model; stall-free cycle counts equal the cycle model's."""

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
    "tiny-bare": preset("tiny").replace(
        early_termination=False, status_stream=False, lanes=3, queries_in_flight=2
    ),
}
CASES = [
    ("icarus", "tiny"),
    ("icarus", "small"),
    ("verilator", "tiny"),
    ("verilator", "small"),
    ("verilator", "minilm"),
    ("verilator", "small-skip"),
    ("verilator", "tiny-bare"),
    pytest.param("icarus", "minilm", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("sim", "name"), CASES)
def test_frontend_rtl(sim, name, tmp_path):
    cfg = CONFIGS[name]
    straight, causal = tmp_path / "straight.npz", tmp_path / "causal.npz"
    trace_file.save(regression_trace(cfg, seed=1), straight)
    trace_file.save(regression_trace(cfg, seed=2, causal=True), causal)
    plan = make_plan(cfg, top="frontend", runs=[
        {"trace": str(straight)},
        {"trace": str(causal), "batches": 2},
        {"trace": str(straight), "idle": 0.3, "backpressure": 0.5, "batches": 3, "seed": 4,
         "modes": ["early_termination"]},
    ])
    top, source = verilog_text(cfg, "frontend")
    results = simulate.run(simulate.build(top, source, sim), simulate.COCOTB_BENCH, plan)
    assert results["mismatches"] == 0, results["messages"]
    for run in results["runs"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
