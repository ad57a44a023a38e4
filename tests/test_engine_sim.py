"""The whole engine in Amaranth's simulator: every probability, output vector, kept count and
per-query packet cycle equals the golden and cycle models, with and without stalls."""

import pytest

from leopard.hw.config import preset
from leopard.verif.scenarios import regression_run

CONFIGS = {
    "tiny": preset("tiny"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "small": preset("small"),
    "tiny-narrow": preset("tiny").replace(lanes=1, v_lanes=1, queries_in_flight=2, status_stream=False),
    "small-wide": preset("small").replace(lanes=5, v_lanes=2, queries_in_flight=8, result_buffers=2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_engine_matches_golden_and_cycle_model(name):
    cfg = CONFIGS[name]
    outcome = regression_run(cfg, "engine", "amaranth", seeds=(3, 4, 6), stalled_modes=("early_termination", "dense"))
    assert outcome["mismatches"] == 0, outcome["messages"]
    for run in outcome["segments"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
