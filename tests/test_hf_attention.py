"""The hooked attention of ``transformers`` models (a decoder with grouped-query attention and rotary
embeddings, an encoder, a vision transformer; tiny, randomly initialized, built here) and real traces
from it, checked against the models' own attention and the golden model."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file
from leopard.model.training import bert, hf_trace, quantize
from leopard.model.training.hf_attention import AttentionHook, kv_head_of, visibility
from leopard.model.training.hf_models import HFModel, attention_shape, family_of
from leopard.model.training.hf_trace import model_trace
from leopard.model.training.hf_train import ModelTrainSettings, initial_thresholds, train_model

transformers = pytest.importorskip("transformers")

ENGINE = preset("tiny")
TEXTS = ["a man is eating food .", "the film is dull", "a delight from start to finish , and funny",
         "bad", "it is the best film of the year", "slow and long"]


def tokenizer():
    from transformers import PreTrainedTokenizerFast

    made = PreTrainedTokenizerFast(tokenizer_file=str(bert.pretrained_path() / "tokenizer.json"),
                                   pad_token="[PAD]")
    made.padding_side = "right"
    return made


def tiny(family: str):
    """A two-layer model of ``family`` with 4 heads of dim 4 (the decoder: 2 key/value heads)."""
    torch.manual_seed(0)
    common = dict(hidden_size=16, num_attention_heads=4, num_hidden_layers=2, intermediate_size=32)
    if family == "decoder":
        config = transformers.LlamaConfig(vocab_size=30522, num_key_value_heads=2, head_dim=4,
                                          max_position_embeddings=64, **common)
        model = transformers.LlamaForCausalLM(config)
    elif family == "encoder":
        model = transformers.BertModel(transformers.BertConfig(vocab_size=30522, **common))
    else:
        model = transformers.ViTModel(transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1,
                                                             **common))
    model.set_attn_implementation("eager")
    return model.eval()


def inputs(family: str) -> dict:
    if family == "vision":
        return {"pixel_values": torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))}
    encoded = tokenizer()(TEXTS[:2], padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@pytest.mark.parametrize("family", ["decoder", "encoder", "vision"])
def test_the_hook_hands_the_models_own_attention_to_the_core(family):
    """Through the hook with plain softmax attention every family computes what its own eager
    attention computes; the decoder's mask is seen as causal, the others' as padding."""
    model = tiny(family)
    given = inputs(family)
    with torch.no_grad():
        own = model(**given)[0]
        with AttentionHook(model, bert.dense_core) as hook:
            hooked = model(**given)[0]
    assert hook.causal == (family == "decoder")
    assert hook.layers == 2
    torch.testing.assert_close(hooked, own, rtol=1e-5, atol=1e-5)
    assert model.config._attn_implementation == "eager"


def test_a_shared_attention_module_is_numbered_per_call():
    """ALBERT runs one attention module for all its layers: the hook numbers its calls in each forward
    pass, so every layer gets its own scores (and thresholds) and a second pass starts again at 0."""
    torch.manual_seed(0)
    config = transformers.AlbertConfig(vocab_size=30522, embedding_size=8, hidden_size=16, num_hidden_layers=3,
                                       num_attention_heads=4, intermediate_size=32)
    model = transformers.AlbertModel(config)
    model.set_attn_implementation("eager")
    model.eval()
    made = HFModel(model, tokenizer(), "encoder", "tiny-albert", 3, 4, 4, 4)
    seen = []

    def core(layer, q, k, v, valid, causal=False):
        seen.append(layer)
        return bert.dense_core(layer, q, k, v, valid)

    batches = text_batches(made, TEXTS)
    with torch.no_grad():
        own = model(**inputs("encoder"))[0]
        with AttentionHook(model, core) as hook:
            hooked = model(**inputs("encoder"))[0]
            model(**inputs("encoder"))
    torch.testing.assert_close(hooked, own, rtol=1e-5, atol=1e-5)
    assert seen == [0, 1, 2, 0, 1, 2] and hook.layers == 3
    assert initial_thresholds(made, batches, 0.5).shape == (3, 4)


def test_a_wrong_mask_pattern_fails_the_comparison():
    """A core that ignores causality (bidirectional) changes the decoder's output: the check above can
    fail."""
    model = tiny("decoder")
    given = inputs("decoder")

    def bidirectional(layer, q, k, v, valid, causal=False):
        return bert.dense_core(layer, q, k, v, valid)

    with torch.no_grad():
        own = model(**given)[0]
        with AttentionHook(model, bidirectional):
            hooked = model(**given)[0]
    assert not torch.allclose(hooked, own, atol=1e-3)


def test_masks_the_engine_cannot_run_are_refused():
    causal = torch.ones(1, 1, 3, 3, dtype=torch.bool).tril()
    assert visibility(causal, 1, 3)[1] is True
    left = torch.tensor([[[[False, True, True]] * 3]])
    with pytest.raises(LeopardError, match="padded on the left"):
        visibility(left, 1, 3)
    window = causal & torch.ones(3, 3, dtype=torch.bool).triu(-1)
    with pytest.raises(LeopardError, match="neither padding nor causal"):
        visibility(window, 1, 3)
    with pytest.raises(LeopardError, match="cannot share"):
        kv_head_of(9, 2)
    assert kv_head_of(9, 3) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_families_and_shapes_from_configs():
    assert family_of(transformers.LlamaConfig()) == "decoder"
    assert family_of(transformers.BertConfig()) == "encoder"
    assert family_of(transformers.ViTConfig()) == "vision"
    assert attention_shape(transformers.LlamaConfig(num_hidden_layers=30, num_attention_heads=9,
                                                    num_key_value_heads=3, hidden_size=576,
                                                    head_dim=64)) == (30, 9, 3, 64)


def text_batches(made, texts):
    return list(hf_trace.batches(made, texts, ENGINE.max_seq_len))


@pytest.fixture(scope="module")
def decoder_trace():
    made = HFModel(tiny("decoder"), tokenizer(), "decoder", "tiny-llama", 2, 4, 2, 4)
    return made, model_trace(made, ENGINE, text_batches(made, TEXTS), text_batches(made, TEXTS[:4]), 0.6,
                             quantize.QuantSettings(), seed=0, source="test")


def test_a_decoder_trace_is_causal_shares_keys_per_group_and_matches_the_golden_model(decoder_trace):
    """Every problem of the real trace, run by the golden model, gives exactly the outputs the model
    computed through the engine; query heads 0-1 and 2-3 read one key head each; the pruned share and
    the share of queries with every key pruned are the golden model's."""
    _, traced = decoder_trace
    trace = traced.trace
    assert trace.causal and trace.count == 4 * 2 * 4
    assert trace.kv_group.tolist()[:8] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (trace.k[0] == trace.k[1]).all() and not (trace.k[0] == trace.k[2]).all()
    result = golden.run(ENGINE, trace.problems())
    assert result.kept.sum() + round(traced.pruned * result.visible.sum()) == result.visible.sum()
    visible = result.visible
    rows = visible.any(axis=2)
    empty = int((rows & ~result.kept.any(axis=2)).sum())
    assert empty > 0 and round(traced.all_pruned * rows.sum()) == empty
    idx = np.arange(trace.length)
    assert not (visible & (idx[None, None, :] > idx[None, :, None])).any()
    lm = traced.figures
    ids = tokenizer()(TEXTS[:4], truncation=True, max_length=ENGINE.max_seq_len)["input_ids"]
    assert lm["tokens"] == sum(len(t) - 1 for t in ids)
    assert lm["perplexity"]["dense"]["ci95"][0] <= lm["perplexity"]["dense"]["value"]


def test_the_trace_outputs_are_the_engines_inside_the_model(decoder_trace):
    """The hooked engine core's own outputs (what the model's next layers used) equal the golden
    model's on the saved problems, bit for bit."""
    made, traced = decoder_trace
    core = quantize.HardwareCore(ENGINE, traced.quant, theta=traced.threshold * traced.quant.score_scale(),
                                 threshold=traced.threshold, capture=True)
    encoded = tokenizer()(TEXTS[:4], padding=True, truncation=True, max_length=ENGINE.max_seq_len,
                          return_tensors="pt")
    with torch.no_grad(), AttentionHook(made.model, core):
        made.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"], use_cache=False)
    length = encoded["input_ids"].shape[1]
    outputs = np.stack([c.out for c in core.captured], axis=1).reshape(-1, length, ENGINE.head_dim)
    result = golden.run(ENGINE, traced.trace.problems())
    rows = traced.trace.problems().query_valid()
    assert np.array_equal(np.where(rows[..., None], result.out[:, :length], 0), np.where(rows[..., None], outputs, 0))


def test_a_group_with_other_keys_is_refused(decoder_trace, tmp_path):
    _, traced = decoder_trace
    path = tmp_path / "trace.npz"
    trace_file.save(traced.trace, path)
    assert np.array_equal(trace_file.load(path).kv_group, traced.trace.kv_group)
    k = traced.trace.k.copy()
    k[1, 0, 0] = k[0, 0, 0] + 1 if k[0, 0, 0] < 7 else k[0, 0, 0] - 1
    with pytest.raises(LeopardError, match=r"kv_group.*problem 1 has other keys"):
        dataclasses.replace(traced.trace, k=k)


def test_the_decoder_trace_runs_exactly_on_the_rtl_with_stalls(decoder_trace, tmp_path):
    """The emitted Verilog (Icarus, trace player, random stalls and back-pressure) on the causal,
    grouped-query trace: every decision, score, probability, output and cycle as the golden model's."""
    from leopard.scripts.cli import main

    _, traced = decoder_trace
    path, out = tmp_path / "trace.npz", tmp_path / "sim.json"
    trace_file.save(traced.trace, path)
    assert main(["sim", "--trace", str(path), "--sim", "icarus", "--stalls", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mismatches"] == 0 and report["problems"] == traced.trace.count


def test_threshold_training_moves_the_thresholds_and_the_trace_uses_them(tmp_path):
    """A few soft steps on the tiny decoder with a large λ raise the thresholds (pruning is rewarded);
    the hard steps leave them; the trace then decides with the learned θ, not a quantile."""
    made = HFModel(tiny("decoder"), tokenizer(), "decoder", "tiny-llama", 2, 4, 2, 4)
    batches = text_batches(made, TEXTS)
    settings = ModelTrainSettings(lam=5.0, soft_steps=4, hard_steps=2, lr=1e-4, theta_lr=0.2)
    start = initial_thresholds(made, batches, settings.init_quantile)
    trained = train_model(made, batches, batches, settings)
    theta = trained["theta"]
    assert theta.shape == (2, 4) and (theta > start).all()
    assert [entry["phase"] for entry in trained["log"]] == ["soft"] * 4 + ["hard"] * 2
    traced = model_trace(made, ENGINE, batches, text_batches(made, TEXTS[:4]), 0.0, quantize.QuantSettings(),
                         seed=0, source="test", theta=theta)
    expected = quantize.threshold_int(theta, traced.quant.score_scale(), ENGINE)
    assert np.array_equal(traced.threshold, expected) and traced.pruned > 0


def test_the_dense_control_trains_no_thresholds():
    made = HFModel(tiny("decoder"), tokenizer(), "decoder", "tiny-llama", 2, 4, 2, 4)
    batches = text_batches(made, TEXTS)
    before = [p.detach().clone() for p in made.model.parameters()]
    trained = train_model(made, batches, batches, ModelTrainSettings(soft_steps=2, hard_steps=1, prune=False))
    assert trained["theta"] is None and "kept" not in trained["log"][0]
    assert any(not torch.equal(a, b) for a, b in zip(before, made.model.parameters(), strict=True))


@pytest.mark.slow
def test_the_built_in_decoder_loads_from_gguf_and_saves_as_a_plain_checkpoint(tmp_path):
    """SmolLM2 from its GGUF file: a Llama decoder, 30 layers of 9 heads on 3 key/value heads of dim 64;
    saved and loaded again it computes the same logits bit for bit."""
    from leopard.model.training import hf_models

    source = hf_models.find("smollm2")
    assert (source.family, source.layers, source.heads, source.kv_heads, source.head_dim) == (
        "decoder", 30, 9, 3, 64)
    made = source.load()
    made.model.save_pretrained(tmp_path)
    made.tokenizer.save_pretrained(tmp_path)
    again = hf_models.find(str(tmp_path)).load()
    ids = made.tokenizer(["a fine film"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(made.model(**ids).logits, again.model(**ids).logits)
