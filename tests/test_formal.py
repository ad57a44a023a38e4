"""The lane's exactness proved by k-induction (YoWASP Yosys), and shown to fail for a weakened bound."""

import pytest

from leopard.hw.config import EngineConfig
from leopard.verif.formal import prove_lane

PROOF_CONFIG = EngineConfig(
    head_dim=2, q_bits=3, k_bits=3, v_bits=3, lanes=1, max_seq_len=2, threshold_regs=1,
    exp_frac_bits=8, recip_index_bits=4, recip_bits=8, prob_frac_bits=8, out_frac_bits=2,
)


def test_lane_never_prunes_a_kept_key_nor_keeps_a_pruned_one():
    result = prove_lane(PROOF_CONFIG)
    assert result.proved, result.log


def test_the_zero_plane_skipping_lane_is_exact_too():
    result = prove_lane(PROOF_CONFIG.replace(skip_zero_planes=True))
    assert result.proved, result.log


def test_a_weakened_bound_is_caught():
    result = prove_lane(PROOF_CONFIG, weakened=True)
    assert not result.proved
    assert "proof did fail" in result.log


@pytest.mark.slow
@pytest.mark.parametrize("skip", [False, True])
def test_lane_proof_on_a_wider_key(skip):
    result = prove_lane(PROOF_CONFIG.replace(k_bits=4, q_bits=4, skip_zero_planes=skip))
    assert result.proved, result.log
