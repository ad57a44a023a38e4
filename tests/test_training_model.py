"""The encoder, the pruned attention (soft and hard), and the engine's arithmetic inside the encoder."""

import math

import numpy as np
import pytest
import torch
from training_fixtures import TINY_BERT, TINY_ENGINE

from leopard.hw import fixedpoint
from leopard.hw.config import preset
from leopard.model.reference import golden
from leopard.model.training import bert, quantize
from leopard.model.training.data import Tokenizer, pad
from leopard.model.training.pruned_attention import (
    PrunedCore,
    Thresholds,
    hard_keep,
    masked_probabilities,
    scaled_scores,
)

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread."]


@pytest.fixture(scope="module")
def minilm():
    return bert.load_pretrained().eval()


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_folder(bert.pretrained_path(), 64)


def test_minilm_matches_the_reference_sentence_embeddings(minilm, tokenizer):
    """sentence-transformers' all-MiniLM-L6-v2 (mean pooling, normalized) gives cosine 0.755 here."""
    ids, valid = pad(tokenizer.encode(SENTENCES))
    with torch.no_grad():
        embedding = torch.nn.functional.normalize(bert.mean_pool(minilm(ids, valid), valid), dim=-1)
    assert float(embedding[0] @ embedding[1]) == pytest.approx(0.7553, abs=5e-4)


def test_padding_does_not_change_a_sentence(minilm, tokenizer):
    ids = tokenizer.encode(SENTENCES)
    alone, valid_alone = pad(ids[:1])
    padded, valid_padded = pad(ids)
    with torch.no_grad():
        one = minilm(alone, valid_alone)[0]
        two = minilm(padded, valid_padded)[0, : one.shape[0]]
    assert torch.allclose(one, two, atol=1e-5)


def test_soft_mask_gradient_reaches_every_threshold():
    torch.manual_seed(0)
    model = bert.Classifier(TINY_BERT, 2)
    thresholds = Thresholds(TINY_BERT.num_hidden_layers, TINY_BERT.num_attention_heads)
    ids = torch.randint(1000, 2000, (4, 7))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[0, 5:] = False
    core = PrunedCore(thresholds, soft=True, temperature=0.5)
    logits = model(ids, valid, core)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    task_gradient = thresholds.theta.grad.clone()
    assert (task_gradient != 0).all()
    thresholds.theta.grad = None
    core = PrunedCore(thresholds, soft=True, temperature=0.5)
    model(ids, valid, core)
    core.mask_mean().backward()
    assert (thresholds.theta.grad < 0).all(), "the regularizer must push every threshold up"


def test_soft_mask_is_the_sigmoid_of_the_distance_to_the_threshold():
    scores = torch.tensor([[[[-1.0, 0.0, 1.0]]]])
    keep = torch.sigmoid((scores - 0.5) / 0.25)
    probs = masked_probabilities(scores, keep, torch.ones(1, 3, dtype=torch.bool), hard=False)
    weights = keep * torch.exp(scores - 1.0)
    assert torch.allclose(probs, weights / (weights.sum() + 1e-6))


def _problem(theta: float):
    """One head of 4 tokens (dim 4) with exact scores ``q·k/2``; queries 2 and 3 keep no key at θ = 1."""
    q = torch.tensor([[[[2.0, 0, 0, 0], [0, 2.0, 0, 0], [-2.0, 0, 0, 0], [0, 0, 2.0, 0]]]])
    k = torch.tensor([[[[1.0, 0, 0, 0], [2.0, 0, 0, 0], [0, 1.0, 0, 0], [0.5, 0, 0, 0]]]])
    v = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) + 1
    thresholds = Thresholds(1, 1)
    thresholds.theta.data.fill_(theta)
    return q, k, v, thresholds


def test_hard_phase_prunes_exactly_the_scores_below_the_threshold():
    q, k, v, thresholds = _problem(theta=1.0)
    scores = scaled_scores(q, k)  # q·k / 2: exact, several equal to θ
    assert (scores == 1.0).sum() >= 2
    valid = torch.ones(1, 4, dtype=torch.bool)
    core = PrunedCore(thresholds, soft=False)
    keep = hard_keep(scores, thresholds.theta[0])
    probs = masked_probabilities(scores, keep, valid, hard=True)
    assert torch.equal(probs > 0, scores >= 1.0)
    assert torch.equal(keep.bool(), scores >= 1.0)
    out = core(0, q, k, v, valid)
    assert torch.equal(out[0, 0, 2:], torch.zeros(2, 4)), "a query whose keys are all pruned outputs zero"
    kept = scores[0, 0, 0] >= 1.0
    expected = torch.softmax(scores[0, 0, 0][kept], dim=0) @ v[0, 0][kept]
    assert torch.allclose(out[0, 0, 0], expected)
    assert core.stats.kept.sum() == int((scores >= 1.0).sum())


def test_hard_mask_passes_no_gradient_to_the_thresholds():
    q, k, v, thresholds = _problem(theta=1.0)
    q.requires_grad_(True)
    PrunedCore(thresholds, soft=False)(0, q, k, v, torch.ones(1, 4, dtype=torch.bool)).sum().backward()
    assert thresholds.theta.grad is None


def test_integer_threshold_is_the_float_decision_on_quantized_scores():
    cfg = preset("minilm")
    rng = np.random.default_rng(3)
    theta = rng.normal(0.0, 2.0, (6, 12))
    scale = np.exp(rng.uniform(-9, -5, (6, 12)))
    theta_int = quantize.threshold_int(theta, scale, cfg)
    for score in range(-3000, 3000, 7):
        assert np.array_equal(score >= theta_int, score * scale >= theta)


def test_threshold_int_is_clipped_to_the_register():
    cfg = preset("tiny")
    values = quantize.threshold_int(np.array([1e9, -1e9]), np.array([1.0, 1.0]), cfg)
    assert values.tolist() == [cfg.threshold_max, cfg.threshold_min]


def test_hardware_core_runs_the_golden_softmax_on_the_quantized_head():
    torch.manual_seed(1)
    model = bert.Classifier(TINY_BERT, 2).eval()
    ids = torch.randint(1000, 3000, (3, 9))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[1, 6:] = False
    quant = quantize.calibrate(model, [(ids, valid)], TINY_ENGINE)
    theta = np.zeros(quant.scale_q.shape)
    core = quantize.HardwareCore(
        TINY_ENGINE, quant, theta, quantize.threshold_int(theta, quant.score_scale(), TINY_ENGINE), capture=True
    )
    with torch.no_grad():
        model(ids, valid, core)
    first = core.captured[0]
    top = (1 << (TINY_ENGINE.q_bits - 1)) - 1
    assert np.abs(first.q).max() == top, "calibration maps the largest |q| to the range's end"
    registers = [fixedpoint.encode_scale(TINY_ENGINE, float(s)) for s in quant.score_scale()[0]]
    problems = golden.Problems(
        q=first.q.reshape(-1, 9, 4), k=first.k.reshape(-1, 9, 4), v=first.v.reshape(-1, 9, 4),
        valid_len=np.repeat(first.valid_len, 2), causal=False,
        threshold=np.tile(core.threshold[0], 3),
        scale_mantissa=np.tile([r.mantissa for r in registers], 3),
        scale_shift=np.tile([r.shift for r in registers], 3),
    )
    expected = golden.run(TINY_ENGINE, problems).out.reshape(first.out.shape)
    assert np.array_equal(first.out, expected)


def test_float_and_integer_decisions_differ_only_where_quantization_crosses_the_threshold(minilm, tokenizer):
    """On MiniLM with thresholds at each head's 80th percentile: count the pairs where the integer
    decision differs from the float one, and check each is a score quantization moved across ``θ``."""
    model = bert.Classifier(minilm.config, 2).eval()
    model.bert = minilm
    ids, valid = pad(tokenizer.encode(SENTENCES * 4 + ["the movie was a delight from start to finish"]))
    cfg = preset("minilm")
    quant = quantize.calibrate(model, [(ids, valid)], cfg)
    dense_scores = []

    def dense(layer, q, k, v, valid):
        dense_scores.append(scaled_scores(q, k).numpy())
        return bert.dense_core(layer, q, k, v, valid)

    with torch.no_grad():
        model(ids, valid, dense)
    visible = (valid[:, None, :, None] & valid[:, None, None, :]).numpy()
    theta = np.array([[np.quantile(s[:, h][visible[:, 0]], 0.8) for h in range(12)] for s in dense_scores])
    theta_int = quantize.threshold_int(theta, quant.score_scale(), cfg)
    hardware = quantize.HardwareCore(cfg, quant, theta, theta_int, capture=True)
    float_scores = []

    def recording(layer, q, k, v, valid):
        float_scores.append(scaled_scores(q, k).double().numpy())
        return hardware(layer, q, k, v, valid)

    with torch.no_grad():
        model(ids, valid, recording)
    flips = np.zeros((6, 12), np.int64)
    for layer, captured in enumerate(hardware.captured):
        s_int = np.einsum("bhqd,bhkd->bhqk", captured.q, captured.k)
        scale = quant.score_scale()[layer][None, :, None, None]
        limit = theta[layer][None, :, None, None]
        integer_kept = s_int >= theta_int[layer][None, :, None, None]
        assert np.array_equal(integer_kept, s_int * scale >= limit)
        s_float = float_scores[layer]
        disagree = np.broadcast_to(visible, s_int.shape) & (integer_kept != (s_float >= limit))
        moved_across = np.abs(s_float - limit) <= np.abs(s_float - s_int * scale)
        assert moved_across[disagree].all()
        flips[layer] = disagree.sum(axis=(0, 2, 3))
    assert np.array_equal(hardware.flips, flips)
    assert 0 < flips.sum() < 0.01 * hardware.stats.pairs.sum()


def test_score_scale_is_the_product_of_the_scales_over_root_d():
    quant = quantize.Quantization(np.array([[0.5]]), np.array([[0.25]]), np.array([[1.0]]), np.ones((1, 1, 16)),
                                  head_dim=16)
    assert quant.score_scale()[0, 0] == 0.5 * 0.25 / math.sqrt(16)
