"""Encoders through the hooked attention: a sentence classifier (a new head on a tiny, randomly
initialized encoder built here) fine-tuned dense, then thresholds learned on it, traced with its labels'
figures, and run by the golden model and the RTL."""

import json

import numpy as np
import pytest
import torch
from training_fixtures import tiny_csv

from leopard.hw.config import preset
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file
from leopard.model.training import hf_trace, quantize
from leopard.model.training.data import DataSpec, load_dataset
from leopard.model.training.hf_models import HFModel
from leopard.model.training.hf_train import ModelTrainSettings, initial_thresholds, train_model
from leopard.scripts.cli import main

transformers = pytest.importorskip("transformers")

ENGINE = preset("tiny")
TEXTS = ["the film was good and fine", "the film was bad and dull", "the film was great and lovely",
         "the film was awful and weak", "the film was superb and good", "the film was boring and bad"]
LABELS = np.array([1, 0, 1, 0, 1, 0])
DATA = ["--text-column", "review", "--label-column", "sentiment", "--group-column", "film", "--max-tokens", "8"]


def bert_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from leopard.model.training import bert

    made = PreTrainedTokenizerFast(tokenizer_file=str(bert.pretrained_path() / "tokenizer.json"),
                                   pad_token="[PAD]")
    made.padding_side = "right"
    return made


def tiny_roberta(folder=None):
    """A two-layer RoBERTa classifier with 4 heads of dim 4, MiniLM's tokenizer; saved to ``folder``
    (without its head: a plain encoder checkpoint) when given."""
    torch.manual_seed(0)
    config = transformers.RobertaConfig(vocab_size=30522, hidden_size=16, num_attention_heads=4,
                                        num_hidden_layers=2, intermediate_size=32, max_position_embeddings=40,
                                        pad_token_id=0, num_labels=2)
    if folder is not None:
        transformers.RobertaModel(config).save_pretrained(folder)
        bert_tokenizer().save_pretrained(folder)
    model = transformers.RobertaForSequenceClassification(config)
    model.set_attn_implementation("eager")
    return HFModel(model.eval(), bert_tokenizer(), "encoder", "tiny-roberta", 2, 4, 4, 4, classes=2)


def data_spec(data):
    """The split that ``DATA`` gives of the CSV ``data``."""
    return DataSpec(data=data, text_column="review", label_column="sentiment", group_column="film", labels=None,
                    max_tokens=8)


def labelled(made, count=6, size=3):
    return list(hf_trace.batches(made, TEXTS[:count], ENGINE.max_seq_len, size=size, labels=LABELS[:count]))


def test_the_thresholds_start_from_the_fine_tuned_encoder():
    """The dense fine-tune comes first: θ (not learning, θ's rate 0) is each head's starting quantile on
    the weights as fine-tuned, those that a dense run of the same fine-tune alone reaches; it is not
    the quantile on the weights as loaded."""
    made = tiny_roberta()
    settings = ModelTrainSettings(finetune_steps=3, soft_steps=2, hard_steps=1, lr=1e-3, theta_lr=0.0,
                                  distill=0.5)
    loaded = initial_thresholds(made, labelled(made), settings.init_quantile)
    trained = train_model(made, labelled(made), labelled(made), settings)
    assert [entry["phase"] for entry in trained["log"]] == ["finetune"] * 3 + ["soft"] * 2 + ["hard"]
    assert all("kept" not in entry and "distillation" not in entry for entry in trained["log"][:3])
    assert all("kept" in entry and "distillation" in entry for entry in trained["log"][3:])
    fine_tuned = tiny_roberta()
    train_model(fine_tuned, labelled(fine_tuned), labelled(fine_tuned),
                ModelTrainSettings(finetune_steps=3, soft_steps=0, hard_steps=0, lr=1e-3, prune=False))
    start = initial_thresholds(fine_tuned, labelled(fine_tuned), settings.init_quantile)
    assert np.array_equal(trained["theta"], start.astype(np.float32).astype(np.float64))
    assert not np.allclose(start, loaded)


def test_an_encoder_classifier_trace_is_the_golden_models_with_its_labels_figures():
    """The classifier's trace through the engine: the outputs its attention layers used are the golden
    model's on the traced problems, bit for bit; the figures count each labelled sentence once, and
    the own-attention accuracy is the classifier's own."""
    made = tiny_roberta()
    test = labelled(made, 4, 4)
    traced = hf_trace.model_trace(made, ENGINE, labelled(made), test, 0.6, quantize.QuantSettings(), seed=0,
                                  source="test")
    trace = traced.trace
    assert not trace.causal and trace.count == 4 * 2 * 4 and trace.kv_group is None
    core = quantize.HardwareCore(ENGINE, traced.quant, theta=traced.threshold * traced.quant.score_scale(),
                                 threshold=traced.threshold, capture=True)
    hf_trace.run_hooked(made, core, test[0])
    outputs = np.stack([c.out for c in core.captured], axis=1).reshape(-1, trace.length, ENGINE.head_dim)
    result = golden.run(ENGINE, trace.problems())
    rows = trace.problems().query_valid()[..., None]
    assert np.array_equal(np.where(rows, result.out, 0), np.where(rows, outputs, 0))
    assert 0 < result.kept.sum() < result.visible.sum()
    figures = traced.figures
    assert figures["sentences"] == 4 and set(figures["accuracy"]) == {"dense", "engine"}
    with torch.no_grad():
        logits = hf_trace.forward(made, test[0])
    own = 100 * float((logits.argmax(dim=-1).numpy() == LABELS[:4]).mean())
    assert figures["accuracy"]["dense"]["value"] == pytest.approx(own)


def test_an_encoder_other_than_bert_trains_through_the_hook_on_the_command_line(tmp_path):
    """train on a RoBERTa checkpoint goes through the hooked attention (a new head, the dense fine-tune,
    thresholds) and exports it; train trains its dense control; trace-model traces the classifier with
    the learned thresholds and the control's paired figures; the trace runs exactly on the RTL (Icarus,
    random stalls); trace of the export gives the same trace, and evaluate of it, against the control's
    export, the same figures over the whole test split (the 20 sentences trace-model evaluated)."""
    tiny_roberta(tmp_path / "roberta")
    data = str(tiny_csv(tmp_path / "reviews.csv"))
    common = ["--model", str(tmp_path / "roberta"), "--data", data, *DATA, "--soft-steps", "3",
              "--hard-steps", "2", "--calibration-sentences", "16", "--batch-size", "8", "--lr", "1e-3",
              "--epochs", "1"]
    assert main(["train", *common, "--lambda", "1", "--out", str(tmp_path / "pruned")]) == 0
    assert main(["train", *common, "--dense-control", "--out", str(tmp_path / "control")]) == 0
    training = json.loads((tmp_path / "pruned" / "training.json").read_text())
    assert training["task"] == "classification"
    assert [entry["phase"] for entry in training["log"]].count("finetune") == 9
    out = tmp_path / "traced"
    assert main(["trace-model", "--model", str(tmp_path / "pruned" / "model"), "--data", data, *DATA,
                 "--preset", "tiny", "--sentences", "4", "--evaluate", "20", "--calibration-sentences", "16",
                 "--thresholds", str(tmp_path / "pruned" / "thresholds.json"),
                 "--dense-control", str(tmp_path / "control" / "model"), "--out", str(out)]) == 0
    report = json.loads((out / "model-trace.json").read_text())
    figures = report["text_classification"]
    assert report["family"] == "encoder" and figures["sentences"] == 20
    assert "accuracy_change" in figures["dense_control"]
    trace = trace_file.load(out / "trace.npz")
    assert trace.count == 4 * 2 * 4 and not trace.causal
    assert main(["sim", "--trace", str(out / "trace.npz"), "--sim", "icarus", "--stalls",
                 "--out", str(tmp_path / "sim.json")]) == 0
    assert json.loads((tmp_path / "sim.json").read_text())["mismatches"] == 0
    assert main(["golden", "--trace", str(out / "trace.npz"), "--out", str(out / "golden.json")]) == 0
    assert main(["trace", str(tmp_path / "pruned" / "export.npz"), "--sentences", "4",
                 "--out", str(tmp_path / "again.npz")]) == 0
    again = trace_file.load(tmp_path / "again.npz")
    for name in ("q", "k", "v", "valid_len", "threshold", "scale"):
        assert np.array_equal(getattr(again, name), getattr(trace, name)), name
    assert main(["evaluate", str(tmp_path / "pruned" / "export.npz"), "--dense-control",
                 str(tmp_path / "control" / "export.npz"), "--out", str(tmp_path / "evaluation.json")]) == 0
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert len(load_dataset(data_spec(data)).test) == 20
    assert evaluation["family"] == "encoder" and evaluation["text_classification"] == figures
    assert main(["model-table", str(out), "--out", str(tmp_path / "table.md")]) == 0
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["thresholds"] == "learned, λ = 1" and row["family"].startswith("encoder")
    engine = figures["accuracy"]["engine"]
    assert row["accuracy"].startswith(f"{engine['value']:.2f} % ")
    assert row["change vs dense control"].startswith(f"{figures['dense_control']['accuracy_change']['value']:+.2f}")


def test_encoder_commands_refuse_what_does_not_fit(tmp_path, capsys):
    tiny_roberta(tmp_path / "roberta")
    model = str(tmp_path / "roberta")
    data = str(tiny_csv(tmp_path / "reviews.csv"))
    classifier = tmp_path / "classifier"
    tiny_roberta().model.save_pretrained(classifier)
    bert_tokenizer().save_pretrained(classifier)
    three = tmp_path / "three.csv"
    three.write_text("review,sentiment\n" + "".join(f"film {i},{'abc'[i % 3]}\n" for i in range(30)))
    capsys.readouterr()
    cases = [
        (["sweep", "--model", model, "--out", str(tmp_path / "a")],
         "is a roberta encoder; leopard sweep trains BERT checkpoint folders"),
        (["train", "--model", model, "--plane-cost", "1", "--out", str(tmp_path / "b")],
         "--plane-cost applies to BERT checkpoints; --model " + model + " is an encoder trained through"),
        (["train-model", "--model", str(classifier), "--data", str(three), "--text-column", "review",
          "--label-column", "sentiment", "--out", str(tmp_path / "c")], "classifies 2 classes but the data has 3"),
        (["trace-model", "--model", str(classifier), "--data", str(three), "--text-column", "review",
          "--label-column", "sentiment", "--max-tokens", "8", "--preset", "tiny", "--out", str(tmp_path / "d")],
         "classifies 2 classes but the data has 3"),
        (["trace-model", "--model", str(classifier), "--data", data, *DATA, "--preset", "tiny",
          "--dense-control", model, "--out", str(tmp_path / "d")], "--dense-control compares task figures"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
        assert not any((tmp_path / name).exists() for name in "abcd")


def test_an_encoder_takes_the_bert_paths_defaults_and_warms_up_its_fine_tune(tmp_path):
    """train on a non-BERT encoder runs train-model with the BERT path's schedule (200 soft and 100
    hard steps of 16 sentences at 5e-5, thresholds from the 0.3 quantile of 256 sentences, one thread)
    after half an epoch of dense fine-tune; a decoder keeps train-model's and fine-tunes nothing. The
    fine-tune's learning rate rises over its first tenth, stays through the soft phase and falls to 0
    over the hard one."""
    from leopard.model.training import hf_models
    from leopard.model.training.hf_train import _weights_lr
    from leopard.scripts import cli, model_commands, train_commands

    tiny_roberta(tmp_path / "roberta")
    source = hf_models.find(str(tmp_path / "roberta"))
    args = cli.build_parser().parse_args(["train", "--model", str(tmp_path / "roberta")])
    train_commands.hooked_options(args, source)
    settings, epochs = model_commands.train_model_settings(args, source.family)
    assert (settings.soft_steps, settings.hard_steps, settings.batch_size, settings.lr) == (200, 100, 16, 5e-5)
    assert (settings.init_quantile, args.calibration_sentences, args.train_threads, epochs) == (0.3, 256, 1, 0.5)
    args = cli.build_parser().parse_args(["train-model", "--model", "smollm2"])
    settings, epochs = model_commands.train_model_settings(args, "decoder")
    assert (settings.soft_steps, settings.batch_size, settings.lr, epochs) == (100, 8, 1e-5, 0.0)
    schedule = ModelTrainSettings(finetune_steps=20, soft_steps=5, hard_steps=4, lr=1.0)
    rates = [_weights_lr(step, schedule) for step in range(29)]
    assert rates[:3] == [0.5, 1.0, 1.0] and rates[2:25] == [1.0] * 23 and rates[25:] == [1.0, 0.75, 0.5, 0.25]
