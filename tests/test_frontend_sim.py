"""The whole front end in Amaranth's simulator on the regression cases: every decision, score and plane
count equals the golden model's, and stall-free cycle counts equal the cycle model's."""

import pytest

from leopard.hw.config import preset
from leopard.verif.scenarios import regression_run

CONFIGS = {
    "tiny": preset("tiny"),
    "small-skip": preset("small").replace(skip_zero_planes=True),
    "small": preset("small"),
    "tiny-bare": preset("tiny").replace(
        early_termination=False, status_stream=False, lanes=3, queries_in_flight=2
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_frontend_matches_golden_and_cycle_model(name):
    cfg = CONFIGS[name]
    outcome = regression_run(cfg, "frontend", "amaranth", seeds=(1, 2, 4), stalled_modes=("early_termination", "dense"))
    assert outcome["mismatches"] == 0, outcome["messages"]
    for run in outcome["segments"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
    assert outcome["segments"][0]["dense"]["cycles"] > outcome["segments"][0]["early_termination"]["cycles"] \
        or not cfg.early_termination
