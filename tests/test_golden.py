import math

import numpy as np
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st

from leopard.hw import fixedpoint
from leopard.hw.config import EngineConfig, preset
from leopard.model.reference import golden, synthetic


def _problems(cfg, q, k, v, threshold, scale=0.01, causal=False, valid_len=None):
    q, k, v = (np.asarray(a, np.int64)[None] for a in (q, k, v))
    register = fixedpoint.encode_scale(cfg, scale)
    return golden.Problems(
        q=q, k=k, v=v,
        valid_len=np.array([q.shape[1] if valid_len is None else valid_len]),
        causal=causal, threshold=np.array([threshold]),
        scale_mantissa=np.array([register.mantissa]), scale_shift=np.array([register.shift]),
    )


@st.composite
def configs(draw):
    return EngineConfig(
        head_dim=draw(st.integers(1, 8)), q_bits=draw(st.integers(2, 9)),
        k_bits=draw(st.integers(2, 9)), v_bits=draw(st.integers(2, 8)), max_seq_len=16,
        exp_index_bits=draw(st.integers(2, 8)), exp_frac_bits=draw(st.integers(8, 15)),
        recip_index_bits=draw(st.integers(2, 8)), recip_bits=draw(st.integers(8, 16)),
    )


def _signed(bits):
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


@st.composite
def problems(draw):
    cfg = draw(configs())
    n = draw(st.integers(1, 6))
    extreme = draw(st.sampled_from(["random", "negative_q", "min_k", "max_both", "narrow_k", "small_positive_k"]))
    def vec(bits):
        return st.lists(_signed(bits), min_size=cfg.head_dim, max_size=cfg.head_dim)
    q = draw(st.lists(vec(cfg.q_bits), min_size=n, max_size=n))
    k = draw(st.lists(vec(cfg.k_bits), min_size=n, max_size=n))
    v = draw(st.lists(vec(cfg.v_bits), min_size=n, max_size=n))
    if extreme == "negative_q":
        q = [[-abs(x) - 1 if x >= 0 else x for x in row] for row in q]
    elif extreme == "min_k":
        k = [[-(1 << (cfg.k_bits - 1))] * cfg.head_dim for _ in k]
    elif extreme == "narrow_k":
        k = [[x >> max(cfg.k_bits - 3, 0) for x in row] for row in k]
    elif extreme == "small_positive_k":
        k = [[abs(x) % 4 if cfg.k_bits > 2 else 0 for x in row] for row in k]
    elif extreme == "max_both":
        q = [[-(1 << (cfg.q_bits - 1))] * cfg.head_dim for _ in q]
        k = [[-(1 << (cfg.k_bits - 1))] * cfg.head_dim for _ in k]
    theta = draw(st.one_of(
        st.sampled_from([cfg.threshold_min, cfg.threshold_max, 0]),
        st.integers(cfg.threshold_min, cfg.threshold_max),
        st.integers(-(1 << (cfg.q_bits + cfg.k_bits)), 1 << (cfg.q_bits + cfg.k_bits)),
    ))
    causal = draw(st.booleans())
    return cfg, _problems(cfg, q, k, v, theta, causal=causal)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_planes_and_decisions_match_the_bit_serial_reference(case):
    cfg, batch = case
    result = golden.run(cfg, batch)
    theta = int(batch.threshold[0])
    for i in range(batch.length):
        for j in range(batch.length):
            if not result.visible[0, i, j]:
                assert result.planes[0, i, j] == 0 and not result.kept[0, i, j]
                continue
            planes, kept = reference.lane(batch.q[0, i].tolist(), batch.k[0, j].tolist(), theta, cfg.k_bits)
            assert (int(result.planes[0, i, j]), bool(result.kept[0, i, j])) == (planes, kept)
            assert kept == (result.scores[0, i, j] >= theta)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_zero_plane_skipping_matches_its_reference_and_never_costs_more(case):
    cfg, batch = case
    cfg = cfg.replace(skip_zero_planes=True)
    skipping, plain = golden.run(cfg, batch), golden.run(cfg.replace(skip_zero_planes=False), batch)
    theta = int(batch.threshold[0])
    for i, j in zip(*np.nonzero(skipping.visible[0]), strict=True):
        cycles, kept = reference.lane_skipping(batch.q[0, i].tolist(), batch.k[0, j].tolist(), theta, cfg.k_bits)
        assert (int(skipping.planes[0, i, j]), bool(skipping.kept[0, i, j])) == (cycles, kept)
    assert np.array_equal(skipping.kept, plain.kept)
    assert np.all(skipping.planes <= plain.planes)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_dense_mode_runs_every_plane_and_keeps_every_key(case):
    cfg, batch = case
    result = golden.run(cfg, batch, dense=True)
    assert np.array_equal(result.kept, result.visible)
    assert np.array_equal(result.planes, np.where(result.visible, cfg.k_bits, 0))


@settings(max_examples=150, deadline=None)
@given(problems(), st.booleans())
def test_softmax_matches_the_scalar_reference(case, dense):
    cfg, batch = case
    result = golden.run(cfg, batch, dense=dense)
    for i in range(batch.length):
        keys = np.flatnonzero(result.kept[0, i])
        probs, out = reference.softmax_query(
            result.scores[0, i, keys].tolist(), batch.v[0, keys].tolist(),
            int(batch.scale_mantissa[0]), int(batch.scale_shift[0]), cfg,
        )
        assert result.probs[0, i, keys].tolist() == probs
        assert result.out[0, i].tolist() == out


def test_threshold_above_every_score_prunes_all_and_outputs_zero():
    cfg = preset("small")
    trace = synthetic.random_trace(cfg, seed=3, problems=2)
    batch = trace.problems()
    batch = golden.Problems(**{**batch.__dict__, "threshold": np.full(2, cfg.threshold_max)})
    result = golden.run(cfg, batch)
    assert not result.kept.any()
    assert not result.out.any() and not result.probs.any()


def test_early_termination_off_in_the_config_means_dense():
    cfg = preset("small").replace(early_termination=False)
    batch = synthetic.random_trace(cfg, seed=4, problems=2, prune_fraction=0.9).problems()
    result, dense = golden.run(cfg, batch), golden.run(cfg, batch, dense=True)
    assert np.array_equal(result.planes, dense.planes) and np.array_equal(result.out, dense.out)


@pytest.mark.parametrize("name", ["tiny", "small", "minilm"])
@pytest.mark.parametrize("prune", [0.0, 0.5, 0.9])
def test_output_tracks_float_attention_within_the_documented_bound(name, prune):
    cfg = preset(name)
    trace = synthetic.random_trace(cfg, seed=11, problems=3, length=min(cfg.max_seq_len, 48),
                                   prune_fraction=prune)
    batch = trace.problems()
    result = golden.run(cfg, batch)
    worst = 0.0
    for p in range(batch.count):
        for i in range(batch.length):
            keys = np.flatnonzero(result.kept[p, i])
            if keys.size == 0:
                continue
            logits = result.scores[p, i, keys] * trace.scale[p]
            weights = np.exp(logits - logits.max())
            values = batch.v[p, keys].astype(np.float64)
            exact = weights @ values / weights.sum()
            got = result.out[p, i] / 2.0**cfg.out_frac_bits
            bound = np.array([fixedpoint.output_error_bound(cfg, keys.size, float(np.abs(values[:, d]).max()))
                              for d in range(cfg.head_dim)])
            assert np.all(np.abs(got - exact) <= bound)
            worst = max(worst, float(np.max(np.abs(got - exact) / bound)))
    assert worst > 0.0


def test_probabilities_sum_to_one_within_rounding():
    cfg = preset("minilm")
    batch = synthetic.random_trace(cfg, seed=5, problems=2, length=64, prune_fraction=0.7).problems()
    result = golden.run(cfg, batch)
    sums = result.probs.sum(axis=-1)[batch.query_valid()] / 2.0**cfg.prob_frac_bits
    kept = result.kept.sum(axis=-1)[batch.query_valid()]
    slack = 2.0 ** -(cfg.recip_index_bits) + kept * 2.0 ** -(cfg.prob_frac_bits + 1)
    assert np.all(np.abs(sums - 1.0) <= slack)


def test_scale_register_round_trip():
    cfg = preset("minilm")
    for scale in (1e-6, 3.7e-5, 0.01, 1.0):
        register = fixedpoint.encode_scale(cfg, scale)
        assert fixedpoint.ScaleRegister.from_word(cfg, register.word(cfg)) == register
        assert math.isclose(register.value(), scale, rel_tol=2.0**-cfg.scale_mantissa_bits)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), 1e30, 1e-30])
def test_unencodable_scales_are_refused(scale):
    with pytest.raises(Exception, match="scale"):
        fixedpoint.encode_scale(preset("minilm"), scale)
