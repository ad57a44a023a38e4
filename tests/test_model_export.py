"""Version 3 of the export: any ``transformers`` model with the engine config, scales and thresholds it
was traced with (tiny, randomly initialized models of each family, built here), traced again from the
file alone exactly as before, byte-reproducibly written, and refused with one line when malformed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_encoder_family import DATA, bert_tokenizer, tiny_roberta
from test_hf_attention import ENGINE, TEXTS, text_batches, tiny, tokenizer
from training_fixtures import tiny_csv

from leopard.model.reference import trace as trace_file
from leopard.model.training import hf_export, hf_trace, quantize
from leopard.model.training.hf_models import HFModel
from leopard.scripts.cli import main

transformers = pytest.importorskip("transformers")


def made_of(family):
    """A tiny model of ``family`` as ``trace-model`` loads it: the decoder with grouped-query attention,
    the encoder bare, the vision model with its classifier head."""
    if family == "vision":
        torch.manual_seed(0)
        config = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                        num_attention_heads=4, num_hidden_layers=2, intermediate_size=32,
                                        num_labels=3)
        model = transformers.ViTForImageClassification(config)
        model.set_attn_implementation("eager")
        return HFModel(model.eval(), None, "vision", "tiny-vit", 2, 4, 4, 4)
    kv_heads = 2 if family == "decoder" else 4
    return HFModel(tiny(family), tokenizer(), family, f"tiny-{family}", 2, 4, kv_heads, 4)


def batches_of(made, count):
    if made.family == "vision":
        pixels = torch.randn(count, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        return [(pixels, torch.arange(count) % 3)]
    return text_batches(made, TEXTS[:count])


@pytest.mark.parametrize("family", ["decoder", "encoder", "vision"])
def test_an_export_traces_again_exactly_without_calibrating(family, tmp_path):
    """The export's weights are the model's, and its scales and thresholds, given back to the trace with
    no calibration examples, give every integer of the first trace again."""
    made = made_of(family)
    first = hf_trace.model_trace(made, ENGINE, batches_of(made, 6), batches_of(made, 4), 0.6,
                                 quantize.QuantSettings(), seed=0, source="test")
    path = tmp_path / "model.npz"
    hf_export.save(hf_export.from_trace(made, ENGINE, first.quant, first.threshold, None, {"model": "tiny"}),
                   path)
    source = hf_export.load(path)
    assert (source.family, source.layers, source.heads, source.kv_heads, source.head_dim) == (
        family, 2, 4, made.kv_heads, 4)
    again = source.load()
    own = made.model.state_dict()
    assert all(torch.equal(value, own[name]) for name, value in again.model.state_dict().items())
    exported = source.export
    second = hf_trace.model_trace(again, exported.config, [], batches_of(again, 4), 0.6,
                                  quantize.QuantSettings(), seed=0, source="test", theta=exported.threshold,
                                  calibrated=exported.quantization())
    assert np.array_equal(second.threshold, first.threshold)
    for name in ("q", "k", "v", "valid_len", "threshold", "scale"):
        assert np.array_equal(getattr(second.trace, name), getattr(first.trace, name)), name


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """trace-model on a tiny RoBERTa classifier, writing its export twice."""
    folder = tmp_path_factory.mktemp("export")
    tiny_roberta().model.save_pretrained(folder / "classifier")
    bert_tokenizer().save_pretrained(folder / "classifier")
    data = str(tiny_csv(folder / "reviews.csv"))
    common = ["--data", data, *DATA, "--preset", "tiny", "--sentences", "4", "--evaluate", "12",
              "--calibration-sentences", "16", "--prune", "0.7"]
    for name in ("a", "b"):
        assert main(["trace-model", "--model", str(folder / "classifier"), *common,
                     "--out", str(folder / f"trace-{name}"), "--export", str(folder / f"{name}.npz")]) == 0
    return folder, data


def test_trace_model_takes_its_export_back_and_gives_the_same_trace_and_figures(traced):
    folder, _ = traced
    assert (folder / "a.npz").read_bytes() == (folder / "b.npz").read_bytes()
    out = folder / "from-export"
    assert main(["trace-model", "--model", str(folder / "a.npz"), "--sentences", "4", "--evaluate", "12",
                 "--out", str(out)]) == 0
    before, after = (json.loads((path / "model-trace.json").read_text()) for path in (folder / "trace-a", out))
    assert after["export"] == str(folder / "a.npz") and after["calibration_sentences"] == 16
    for key in ("text_classification", "threshold_int", "scores_pruned", "quantization", "config"):
        assert after[key] == before[key], key
    first, second = (trace_file.load(path / "trace.npz") for path in (folder / "trace-a", out))
    for name in ("q", "k", "v", "valid_len", "threshold", "scale", "layer", "head"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name


def _rewrite(source, path, **changes):
    with np.load(source, allow_pickle=False) as archive:
        fields = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value(fields[name]) if callable(value) else value
    np.savez(path, **fields)
    return path


@pytest.mark.parametrize("changes, message", [
    ({"file.config.json": None}, "field 'file.config.json': missing"),
    ({"file.config.json": np.frombuffer(b"{", np.uint8)}, "field 'file.config.json': transformers cannot read"),
    ({"weight.classifier.out_proj.bias": None}, "field 'weight.classifier.out_proj.bias': missing"),
    ({"weight.classifier.out_proj.bias": lambda w: w[:1]},
     "field 'weight.classifier.out_proj.bias': must have shape (2,)"),
    ({"weight.extra": np.zeros(2, np.float32)}, "field 'weight.extra': is not a weight of this model"),
    ({"threshold_int": lambda t: t + 1}, "field 'threshold_int': differs from ⌈threshold / scale⌉"),
    ({"key_channel_scale": lambda c: c[..., :2]}, "field 'key_channel_scale': must be a floating array (2, 4, 4)"),
    ({"model": np.array('{"family": "robot", "made_by": {}}')}, "key 'family' must be one of encoder"),
    ({"version": np.array(2)}, "an export of the project's BERT (leopard train); give it to leopard evaluate"),
])
def test_a_malformed_model_export_is_a_one_line_error(traced, tmp_path, capsys, changes, message):
    folder, data = traced
    path = _rewrite(folder / "a.npz", tmp_path / "bad.npz", **changes)
    out = tmp_path / "out"
    assert main(["trace-model", "--model", str(path), "--data", data, *DATA, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and str(path) in error, error
    assert not out.exists()


def test_an_export_refuses_what_makes_scales_and_thresholds_and_the_bert_only_commands(traced, tmp_path,
                                                                                       capsys):
    folder, data = traced
    model = str(folder / "a.npz")
    bare = _rewrite(folder / "a.npz", tmp_path / "no-data.npz",
                    model=np.array(json.dumps({"family": "encoder", "made_by": {"model": "x"}})))
    tiny_roberta(tmp_path / "encoder")
    other = tmp_path / "other.csv"
    other.write_text(Path(data).read_text().replace("good", "fine"))
    cases = [
        (["evaluate", model, "--data", str(other), "--out", str(tmp_path / "a.json")],
         f"data {other} differs from the data export {model} was made on (sha256)"),
        (["evaluate", model, "--dense-control", str(tmp_path / "encoder"), "--out", str(tmp_path / "a.json")],
         f"--dense-control {tmp_path / 'encoder'} is another kind of model"),
        (["trace", str(bare), "--sentences", "2", "--out", str(tmp_path / "a.json")],
         f"export {bare} does not record its data; trace it with leopard trace-model --model"),
        (["trace-model", "--model", model, "--prune", "0.5", "--out", str(tmp_path / "a")],
         f"--prune: the export {model} holds scales and thresholds; drop it"),
        (["trace-model", "--model", model, "--preset", "tiny", "--out", str(tmp_path / "a")],
         f"--preset: the export {model} holds scales and thresholds"),
        (["trace-model", "--model", model, "--max-tokens", "6", "--out", str(tmp_path / "a")],
         f"--max-tokens: the export {model} holds its data options (--data: where the data file moved)"),
        (["trace-model", "--model", model, "--data", str(other), "--out", str(tmp_path / "a")],
         f"data {other} differs from the data export {model} was made on (sha256)"),
        (["evaluate", model, "--preset", "small", "--out", str(tmp_path / "a.json")],
         f"export {model} was made for another engine config; drop --preset/--config"),
        (["demo", "--export", model, "--out", str(tmp_path / "a")],
         f"export {model} holds a transformers model (version 3); the demo runs the project's BERT"),
        (["requantize", model, "--out", str(tmp_path / "a.json")],
         "a transformers model's export, not the project's BERT; give it to leopard evaluate, leopard trace or"),
        (["trace-model", "--model", str(folder / "classifier"), "--data", data, *DATA, "--preset", "tiny",
          "--out", str(tmp_path / "a"), "--export", str(tmp_path)], "--export " + str(tmp_path) + " is a folder"),
        (["trace-model", "--model", str(folder / "classifier"), "--out", str(tmp_path / "a"), "--export",
          str(tmp_path / "m.bin")], f"--export {tmp_path / 'm.bin'}: name it FILE.npz"),
        (["trace-model", "--model", str(folder / "classifier"), "--out", str(tmp_path / "a"), "--export",
          str(tmp_path / "a" / "trace.npz")], "is a file that --out " + str(tmp_path / "a") + " writes"),
        (["evaluate", model, "--dense-control", str(_rewrite(folder / "a.npz", tmp_path / "bert.npz",
                                                              version=np.array(2))),
          "--out", str(tmp_path / "a.json")], "is an export of the project's BERT; the control of a "
                                              "transformers model is its own export or checkpoint folder"),
    ]
    capsys.readouterr()
    for argv, message in cases:
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
        assert not (tmp_path / "a").exists() and not (tmp_path / "a.json").exists()


def test_a_decoder_trains_exports_traces_and_evaluates_on_the_command_line(tmp_path):
    """train on a tiny Llama checkpoint (grouped-query attention) writes export.npz beside the model;
    trace of it is causal and shares keys per group as trace-model's is, array for array; evaluate scores
    next-token accuracy and perplexity over every test sentence."""
    tiny("decoder").save_pretrained(tmp_path / "llama")
    tokenizer().save_pretrained(tmp_path / "llama")
    data = str(tiny_csv(tmp_path / "reviews.csv"))
    common = ["--data", data, *DATA]
    assert main(["train", "--model", str(tmp_path / "llama"), *common, "--soft-steps", "2", "--hard-steps", "1",
                 "--calibration-sentences", "8", "--out", str(tmp_path / "run")]) == 0
    exported = str(tmp_path / "run" / "export.npz")
    assert main(["trace", exported, "--sentences", "3", "--out", str(tmp_path / "a.npz")]) == 0
    assert main(["trace-model", "--model", str(tmp_path / "run" / "model"), *common, "--sentences", "3",
                 "--calibration-sentences", "8", "--thresholds", str(tmp_path / "run" / "thresholds.json"),
                 "--out", str(tmp_path / "b")]) == 0
    first, second = trace_file.load(tmp_path / "a.npz"), trace_file.load(tmp_path / "b" / "trace.npz")
    assert first.causal and first.kv_group is not None
    for name in ("q", "k", "v", "valid_len", "threshold", "scale", "kv_group"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert main(["evaluate", exported, "--out", str(tmp_path / "evaluation.json")]) == 0
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["family"] == "decoder" and evaluation["kv_heads"] == 2
    assert {"next_token_accuracy", "perplexity"} <= set(evaluation["language_model"])
