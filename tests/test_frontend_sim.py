"""The whole front end in Amaranth's simulator on the regression cases: every decision, score and plane
count equals the golden model's, and stall-free cycle counts equal the cycle model's."""

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
    "tiny-bare": preset("tiny").replace(
        early_termination=False, status_stream=False, lanes=3, queries_in_flight=2
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_frontend_matches_golden_and_cycle_model(name, tmp_path):
    cfg = CONFIGS[name]
    straight, causal = tmp_path / "straight.npz", tmp_path / "causal.npz"
    trace_file.save(regression_trace(cfg, seed=1), straight)
    trace_file.save(regression_trace(cfg, seed=2, causal=True), causal)
    outcome = run_plan(cfg, make_plan(cfg, top="frontend", runs=[
        {"trace": str(straight)},
        {"trace": str(causal), "batches": 2},
        {"trace": str(straight), "idle": 0.3, "backpressure": 0.5, "batches": 3, "seed": 4},
    ]))
    assert outcome["mismatches"] == 0, outcome["messages"]
    for run in outcome["runs"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
    assert outcome["runs"][0]["dense"]["cycles"] > outcome["runs"][0]["early_termination"]["cycles"] \
        or not cfg.early_termination
