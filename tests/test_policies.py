"""The keep policies and the energy model on random integer problems: top-k keeps exactly k per query,
SpAtten's cascade never revives a token, Sanger's mask equals a plain-Python reference, leopard's
decisions are the golden model's, and the energy counts equal hand counts on tiny problems."""

import dataclasses
import itertools
import math

import numpy as np
import pytest

from leopard.hw.config import PRESETS, EngineConfig
from leopard.model.reference import confidence, energy, golden, policies, synthetic

CFG = PRESETS["minilm"]


def problems(cfg: EngineConfig, count: int, length: int, seed: int, causal: bool = False) -> golden.Problems:
    """Random problems of random valid lengths."""
    made = synthetic.random_trace(cfg, seed=seed, problems=count, length=length, causal=causal).problems()
    lengths = np.random.default_rng(seed).integers(1, length + 1, size=count)
    return dataclasses.replace(made, valid_len=lengths)


@pytest.mark.parametrize("causal", [False, True])
def test_top_k_keeps_exactly_k_per_query_or_all_it_sees(causal):
    batch = problems(CFG, 8, 12, seed=1, causal=causal)
    heads = 4
    k = np.random.default_rng(2).integers(1, 8, size=(3, heads))
    attended = policies.TopK(k).attend(CFG, 1, batch, heads, {})
    visible = batch.visible()
    per_query = attended.kept.sum(axis=-1)
    wanted = np.minimum(np.tile(k[1], batch.count // heads)[:, None], visible.sum(axis=-1))
    assert np.array_equal(per_query, wanted)
    score = golden.scores(batch.q, batch.k)
    for p, i in zip(*np.nonzero(batch.query_valid()), strict=True):
        kept, dropped = score[p, i][attended.kept[p, i]], score[p, i][visible[p, i] & ~attended.kept[p, i]]
        assert dropped.size == 0 or kept.min() >= dropped.max()


def test_spatten_cascade_never_revives_a_pruned_token_or_head():
    """Even when the pruned tokens and heads of the first sentence gain the most importance."""
    heads, layers, sentences = 4, 5, 3
    policy = policies.SpAtten(token_keep=0.3, head_keep=0.5, pq_threshold=0.4, layers=layers)
    state: dict = {}
    rng = np.random.default_rng(3)
    alive_tokens, alive_heads = [], []
    for layer in range(layers):
        batch = dataclasses.replace(problems(CFG, sentences * heads, 10, seed=layer),
                                    valid_len=np.repeat([10, 7, 4], heads))
        attended = policy.attend(CFG, layer, batch, heads, state)
        tokens = state["tokens"].copy()
        alive_tokens.append(tokens)
        alive_heads.append(state["heads"].copy())
        live = np.repeat(tokens, heads, axis=0) & state["heads"].reshape(-1)[:, None]
        assert not (attended.kept & ~live[:, :, None]).any() and not (attended.kept & ~live[:, None, :]).any()
        probs = rng.integers(0, 1 << 10, size=(sentences, heads, 10, 10))
        probs[:, :, :, ~tokens[0]] = 1 << 15
        context = rng.normal(size=(sentences, heads, 10, 4))
        context[:, ~state["heads"][0]] = 100.0
        policy.observe(layer, probs, context, state)
    for before, after in itertools.pairwise(alive_tokens):
        assert not (after & ~before).any()
    for before, after in itertools.pairwise(alive_heads):
        assert not (after & ~before).any()
    assert alive_tokens[-1].sum() < alive_tokens[0].sum() and alive_heads[-1].sum() < alive_heads[0].sum()


def test_cascade_keeps_the_most_important_alive_items():
    alive = np.array([[True, True, False, True, True]])
    importance = np.array([[5.0, 1.0, 9.0, 3.0, 3.0]])
    assert policies.cascade(alive, importance, np.array([2])).tolist() == [[True, False, False, True, False]]


def sanger_reference(cfg: EngineConfig, batch: golden.Problems, bits: int, threshold: float) -> np.ndarray:
    """Sanger's mask pair by pair in plain Python."""
    def rounded(x: int, width: int) -> int:
        shift, top = width - bits, (1 << (bits - 1)) - 1
        value = (x + (1 << (shift - 1))) >> shift if shift else x
        return max(-top, min(top, value))

    mask = np.zeros((batch.count, batch.length, batch.length), bool)
    for p in range(batch.count):
        unit = float(batch.scale_mantissa[p]) * 2.0 ** -float(batch.scale_shift[p])
        unit *= 2.0 ** (cfg.q_bits + cfg.k_bits - 2 * bits)
        n = int(batch.valid_len[p])
        for i in range(n):
            keys = range(i + 1) if batch.causal else range(n)
            predicted = {j: sum(rounded(int(a), cfg.q_bits) * rounded(int(b), cfg.k_bits)
                                for a, b in zip(batch.q[p, i], batch.k[p, j], strict=True)) for j in keys}
            top = max(predicted.values())
            weights = {j: math.exp2(unit * (s - top)) for j, s in predicted.items()}
            total = sum(weights.values())
            for j, weight in weights.items():
                mask[p, i, j] = weight / total >= threshold
    return mask


@pytest.mark.parametrize("bits, threshold, causal", [(4, 0.02, False), (3, 0.1, True), (5, 0.005, False)])
def test_sanger_mask_equals_a_plain_python_reference(bits, threshold, causal):
    batch = problems(CFG, 6, 9, seed=bits, causal=causal)
    mask = policies.sanger_mask(CFG, batch, bits, threshold)
    assert np.array_equal(mask, sanger_reference(CFG, batch, bits, threshold))
    assert 0 < mask.sum() < batch.visible().sum()


def test_leopard_keeps_and_counts_what_the_golden_model_decides():
    batch = problems(CFG, 6, 16, seed=5)
    attended = policies.Leopard(CFG).attend(CFG, 0, batch, 2, {})
    result = golden.run(CFG, batch)
    assert np.array_equal(attended.kept, result.kept)
    assert np.array_equal(attended.planes, result.planes)
    assert attended.counts.events["plane_steps"] == result.planes.sum()
    assert attended.counts.events["bound_checks"] == result.planes.sum()


TINY = PRESETS["tiny"]


def test_dense_bit_serial_counts_equal_a_hand_count():
    """``tiny``: D = 4, 4-bit q/k/v, 10-bit scores, 11-bit exponents, 12-bit reciprocals, 18-bit
    accumulators; one problem of 2 valid tokens: 4 pairs, 2 queries, 16 plane steps."""
    batch = dataclasses.replace(problems(TINY, 1, 3, seed=0), valid_len=np.array([2]))
    counts = policies.Dense().attend(TINY, 0, batch, 1, {}).counts
    # front: per step and per query (its P) a 4-input tree of 4-bit terms, 2 adds of 5 bits + 1 of 6;
    # per step the accumulate and per query the limit, at score width; 4 key bits per step, 16 query bits
    assert counts.priced[("front", "add8")] == 16 * 3 + 2 * 3
    assert counts.priced[("front", "add16")] == 16 + 2
    assert counts.priced[("front", "sram_bits")] == 16 * 4 + 2 * 16
    # back, per kept pair: the top compare and the distance (score width), S += e (14 bits), an 11-bit
    # exponent read, a 16-bit v row read, 4 products e × v (11 × 4) and their 18-bit accumulates, and
    # the probability e × R (11 × 12); per query a 12-bit reciprocal read and 4 products A × R (18 × 12)
    assert counts.priced[("back", "add16")] == 4 + 4 + 4
    assert counts.priced[("back", "add32")] == 4 * 4
    assert counts.priced[("back", "partial_products")] == 4 * 4 * 44 + 4 * 132 + 2 * 4 * 216
    assert counts.priced[("back", "sram_bits")] == 4 * 11 + 4 * 16 + 2 * 12
    # off chip: 2 keys and 2 value rows of 16 bits
    assert counts.priced[("off_chip", "dram_bits")] == 64
    front = 54 * 0.03 + 18 * 0.05 + 96 * 10 / 64
    back = 12 * 0.05 + 16 * 0.1 + (704 + 528 + 1728) * 0.2 / 64 + 132 * 10 / 64
    assert counts.energies()["front"] == pytest.approx(front)
    assert counts.energies()["head"] == pytest.approx(front + back)
    assert counts.energies()["total"] == pytest.approx(front + back + 1300)


def test_dense_bit_parallel_counts_equal_a_hand_count():
    counts = policies.Dense(bit_serial=False).counts(TINY, pairs=4, queries=2, tokens=2)
    # 4 pairs: 4 products of 4 × 4 bits each (|q·k| ≤ 49: 7 bits), a 4-input tree of them (2 adds of
    # 8 bits, 1 of 9)
    assert counts.priced[("front", "partial_products")] == 4 * 4 * 16
    assert counts.priced[("front", "add8")] == 4 * 2
    assert counts.priced[("front", "add16")] == 4 * 1
    assert counts.priced[("front", "sram_bits")] == 4 * 4 * 4 + 2 * 4 * 4
    assert counts.events["qk_bit_ops"] == 4 * 4 * 4 * 4


def test_adds_are_priced_at_the_smallest_width_that_holds_them():
    counts = energy.Counts()
    for width in (8, 9, 16, 17, 32, 40):
        counts.adds("front", width, 1)
    assert counts.priced == {("front", "add8"): 1, ("front", "add16"): 2, ("front", "add32"): 1 + 1 + 2}


def test_bootstrap_intervals_hold_the_mean_and_pair_the_same_examples():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.8
    figure = confidence.accuracy(correct, seed=0)
    assert figure["ci95"][0] < figure["value"] < figure["ci95"][1]
    assert confidence.paired_difference(correct, correct, seed=0) == {"value": 0.0, "ci95": [0.0, 0.0]}
    flipped = correct.copy()
    flipped[:8] = ~flipped[:8]
    paired = confidence.paired_difference(flipped, correct, seed=0)
    assert paired["ci95"][1] - paired["ci95"][0] < figure["ci95"][1] - figure["ci95"][0]


def test_ratio_intervals_resample_sentences_and_pair_them():
    """Tokens correct over tokens predicted, one pair per sentence: the value is the pooled ratio, and a
    paired difference of a sentence set with itself is exactly 0."""
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 40, 200).astype(float)
    correct = np.floor(tokens * rng.random(200))
    figure = confidence.ratio(correct, tokens, seed=0, transform=lambda x: 100 * x)
    assert figure["value"] == round(100 * correct.sum() / tokens.sum(), 4)
    assert figure["ci95"][0] < figure["value"] < figure["ci95"][1]
    same = confidence.ratio_difference(correct, correct, tokens, seed=0, compare=lambda a, b: a - b)
    assert same == {"value": 0.0, "ci95": [0.0, 0.0]}
    nll = tokens * 3.0
    assert confidence.ratio(nll, tokens, seed=0, transform=np.exp)["value"] == round(float(np.exp(3.0)), 4)


def test_leopard_counts_equal_a_hand_count_on_a_key_pruned_at_its_sign_plane():
    """``tiny``: one query ``q = (1, 1, 1, 1)`` against one key ``k = (−8, …)``, threshold 0: after the
    sign plane ``acc = −4`` and the bound ``−4·8 + 7·4 = −4 < 0`` prunes it, one step and one check."""
    one = np.ones((1, 1, 4), np.int64)
    batch = golden.Problems(q=one, k=-8 * one, v=one, valid_len=np.array([1]), causal=False,
                            threshold=np.array([0]), scale_mantissa=np.array([1 << 15]),
                            scale_shift=np.array([16]))
    attended = policies.Leopard(TINY).attend(TINY, 0, batch, 1, {})
    assert attended.planes.tolist() == [[[1]]] and not attended.kept.any()
    counts = attended.counts
    assert counts.events["plane_steps"] == 1 and counts.events["bound_checks"] == 1
    assert counts.priced[("front", "add8")] == 3 + 3
    assert counts.priced[("front", "add16")] == 1 + 1 + 1
    assert counts.priced[("front", "sram_bits")] == 4 + 16
    assert counts.priced[("back", "sram_bits")] == 12
    assert counts.priced[("back", "partial_products")] == 4 * 18 * 12
    assert counts.events["macs"] == 0


@pytest.mark.parametrize("pq_threshold, exponents_per_pair", [(0.0, 1), (1.0, 2)])
def test_spatten_pays_the_exponents_again_only_for_the_rows_it_recomputes(pq_threshold, exponents_per_pair):
    batch = problems(CFG, 4, 8, seed=7)
    attended = policies.SpAtten(1.0, 1.0, pq_threshold, layers=2).attend(CFG, 0, batch, 2, {})
    pairs = int(attended.kept.sum())
    assert attended.full == (pairs if pq_threshold else 0)
    assert attended.counts.events["exp_lookups"] == exponents_per_pair * pairs


def test_keep_counts_round_up_the_fraction_but_not_its_rounding_error():
    fraction = policies.keep_fraction(0.8, 4, 6)
    assert fraction * 25 > 21
    assert policies.keep_count(fraction, np.array([25, 1, 10])).tolist() == [21, 1, 9]
    assert policies.keep_count(0.0, np.array([5])).tolist() == [1]
