"""The whole front end, and the dense bit-parallel unit, in Amaranth's simulator on the regression
cases: every decision, score and plane count equals the golden model's, and stall-free cycle counts
equal the cycle model's."""

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


@pytest.mark.parametrize(("top", "name"), [("frontend", name) for name in sorted(CONFIGS)]
                         + [("bitparallel", "tiny"), ("bitparallel-lut", "tiny-bare")])
def test_frontend_matches_golden_and_cycle_model(top, name):
    cfg = CONFIGS[name]
    outcome = regression_run(cfg, top, "amaranth", seeds=(1, 2, 4), stalled_modes=("early_termination", "dense"))
    assert outcome["mismatches"] == 0, outcome["messages"]
    for run in outcome["segments"][:2]:
        for mode in ("early_termination", "dense"):
            assert run[mode]["cycles"] == run[mode]["model_cycles"]
    straight = outcome["segments"][0]
    if top != "frontend" or not cfg.early_termination:
        assert straight["dense"]["cycles"] == straight["early_termination"]["cycles"]
    else:
        assert straight["dense"]["cycles"] > straight["early_termination"]["cycles"]
