"""The whole engine in Amaranth's simulator: every probability, output vector, kept count and
per-query packet cycle equals the golden and cycle models, with and without stalls."""

import pytest

from leopard.hw.config import preset
from leopard.model.reference import trace as trace_file
from leopard.verif.amaranth_sim import run_plan
from leopard.verif.plan import make_plan
from leopard.verif.scenarios import regression_trace

CONFIGS = {
    "tiny": preset("tiny"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "small": preset("small"),
    "tiny-narrow": preset("tiny").replace(lanes=1, v_lanes=1, queries_in_flight=2, status_stream=False),
    "small-wide": preset("small").replace(lanes=5, v_lanes=2, queries_in_flight=8, result_buffers=2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_engine_matches_golden_and_cycle_model(name, tmp_path):
    cfg = CONFIGS[name]
    straight, causal = tmp_path / "straight.npz", tmp_path / "causal.npz"
    trace_file.save(regression_trace(cfg, seed=3), straight)
    trace_file.save(regression_trace(cfg, seed=4, causal=True), causal)
    outcome = run_plan(cfg, make_plan(cfg, [
        {"trace": str(straight)},
        {"trace": str(causal), "batches": 2},
        {"trace": str(straight), "idle": 0.3, "backpressure": 0.5, "batches": 3, "seed": 6},
    ]))
    assert outcome["mismatches"] == 0, outcome["messages"]
    for run in outcome["runs"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
