"""The export file (round trip, validation), ``leopard evaluate`` and ``leopard trace`` on a tiny model."""

import dataclasses
import json

import numpy as np
import pytest
from training_fixtures import TINY_ENGINE, TINY_SETTINGS, tiny_checkpoint, tiny_csv, tiny_spec

from leopard.model.reference import confidence, golden
from leopard.model.reference import trace as trace_file
from leopard.model.training import capture, evaluate, export
from leopard.model.training.bert import dense_core
from leopard.model.training.data import load_dataset
from leopard.model.training.quantize import HardwareCore
from leopard.model.training.train import EXPORT, train
from leopard.scripts.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    spec = tiny_spec(tiny_csv(folder / "reviews.csv"))
    train(folder / "run", TINY_SETTINGS, spec, TINY_ENGINE, model_dir=tiny_checkpoint(folder / "bert"),
          progress=False)
    return folder / "run" / EXPORT


def _fields(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def test_round_trip_is_exact(trained, tmp_path):
    made = export.load(trained)
    again_path = tmp_path / "again.npz"
    export.save(made, again_path)
    assert again_path.read_bytes() == trained.read_bytes()
    again = export.load(again_path)
    for name in export.TABLES:
        assert np.array_equal(getattr(made, name), getattr(again, name))
        assert getattr(made, name).dtype == getattr(again, name).dtype
    assert made.weights.keys() == again.weights.keys()
    assert all(np.array_equal(made.weights[n], again.weights[n]) for n in made.weights)
    assert (made.config, made.bert, made.labels, made.data, made.tokenizer) == (
        again.config, again.bert, again.labels, again.data, again.tokenizer)


def test_export_holds_the_engine_view_of_the_thresholds(trained):
    made = export.load(trained)
    assert made.config == TINY_ENGINE
    assert made.threshold.shape == made.threshold_int.shape == (2, 2)
    scale = made.quantization().score_scale()
    assert np.array_equal(made.threshold_int, np.ceil(made.threshold / scale).astype(np.int64))
    assert all(w.dtype == np.float16 for w in made.weights.values())


def _rewrite(trained, tmp_path, **changes):
    fields = _fields(trained)
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value(fields[name]) if callable(value) else value
    path = tmp_path / "bad.npz"
    np.savez(path, **fields)
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"threshold_int": None}, "field 'threshold_int': missing"),
        ({"version": np.array(4)}, "field 'version': must be 1, 2, 3"),
        ({"version": np.array(3)}, "field 'model': key 'made_by' must be a JSON object"),
        ({"key_channel_scale": None}, "field 'key_channel_scale': missing"),
        ({"version": np.array(2), "key_channel_scale": np.ones((2, 2, 3))},
         "field 'key_channel_scale': must be a floating array (2, 2, 4)"),
        ({"version": np.array(2), "key_channel_scale": np.full((2, 2, 4), 1.5)},
         "field 'key_channel_scale': relative key scales must lie in (0, 1]"),
        ({"format": np.array("something")}, "field 'format': must be 'leopard-export'"),
        ({"threshold_int": lambda t: t + 1}, "field 'threshold_int': differs from ⌈threshold / scale⌉"),
        ({"threshold": lambda t: t[:1]}, "field 'threshold': must be a floating array (2, 2)"),
        ({"scale_v": lambda s: -s}, "field 'scale_v': scales must be positive"),
        ({"config": np.array("{")}, "field 'config': config is not valid JSON"),
        ({"model": np.array("[]")}, "field 'model': must hold a JSON object"),
        ({"tokenizer": np.array("no")}, "field 'tokenizer': not a tokenizer.json"),
        ({"weight.head.weight": lambda w: w[:, :3]}, "field 'weight.head.weight': must be float16 or float32"),
        ({"weight.head.bias": None}, "field 'weight.head.bias': missing"),
        ({"weight.head.bias": lambda w: w * np.float16("nan")}, "field 'weight.head.bias': holds a value"),
    ],
)
def test_a_malformed_export_is_a_one_line_error(trained, tmp_path, capsys, changes, message):
    path = _rewrite(trained, tmp_path, **changes)
    out = tmp_path / "report.json"
    assert main(["evaluate", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and str(path) in error
    assert not out.exists()


def test_an_unreadable_export_is_a_one_line_error(tmp_path, capsys):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert main(["trace", str(junk), "--sentences", "1", "--out", str(tmp_path / "t.npz")]) == 2
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "is not an .npz file" in errors[0] and "no such file" in errors[1]
    assert not (tmp_path / "t.npz").exists()


def test_a_truncated_export_is_a_one_line_error(trained, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    with pytest.raises(export.ExportError, match=r"is not an \.npz file"):
        export.load(cut)


def test_evaluate_reports_the_four_accuracies_reproducibly(trained, tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", str(trained), "--out", str(first)]) == 0
    assert main(["evaluate", str(trained), "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    report = json.loads(first.read_text())
    assert set(report["accuracy"]) == {"float", "float_pruned", "quantized", "quantized_pruned"}
    assert report["accuracy_loss"] == pytest.approx(
        report["accuracy"]["quantized_pruned"] - report["accuracy"]["float"], abs=1e-3)
    assert np.array(report["pruned_per_head"]).shape == (2, 2)
    for kind, (low, high) in report["accuracy_ci95"].items():
        assert low <= report["accuracy"][kind] <= high
    low, high = report["accuracy_loss_ci95"]
    assert low <= report["accuracy_loss"] <= high
    assert "difference_vs_dense_control" not in report
    out = capsys.readouterr().out
    assert "pruned_fraction" in out and "layer 1" in out and "h1" in out


def test_evaluate_pairs_the_accuracy_against_a_dense_control(trained, tmp_path, capsys):
    """The control: the same model, unpruned, with a random classifier head (the tiny model alone
    predicts one class), so its predictions differ from the export's own."""
    made = export.load(trained)
    rng = np.random.default_rng(0)
    weights = {**made.weights, "head.weight": rng.normal(size=made.weights["head.weight"].shape),
               "head.bias": rng.normal(size=made.weights["head.bias"].shape)}
    control = dataclasses.replace(made, weights={k: v.astype(made.weights[k].dtype) for k, v in weights.items()},
                                  training={**made.training, "prune": False})
    export.save(control, tmp_path / "control.npz")
    test = load_dataset(made.data).test
    ids = made.text_tokenizer().encode(test.texts)
    own, _ = evaluate.predict(made.classifier(), ids, lambda: dense_core)
    theirs, _ = evaluate.predict(control.classifier(), ids, lambda: dense_core)
    assert (own != theirs).any()
    assert main(["evaluate", str(trained), "--dense-control", str(tmp_path / "control.npz"),
                 "--out", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    pruned, _ = evaluate.predict(made.classifier(), ids, lambda: HardwareCore(
        made.config, made.quantization(), made.threshold, made.threshold_int))
    assert report["difference_vs_dense_control"] == confidence.paired_difference(
        pruned == test.labels, theirs == test.labels, seed=0)
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--dense-control", str(trained)]) == 2
    assert "trained with thresholds" in capsys.readouterr().err


def test_evaluate_refuses_another_engine_config(trained, capsys):
    assert main(["evaluate", str(trained), "--preset", "minilm"]) == 2
    assert "another engine config" in capsys.readouterr().err


def test_a_captured_trace_is_what_the_golden_model_computes(trained):
    made = export.load(trained)
    test = load_dataset(made.data).test
    chosen = capture.pick(test, 5, seed=2)
    captured = capture.capture(made, test, chosen, "test")
    trace = captured.trace
    layers, heads = made.threshold.shape
    assert trace.count == 5 * layers * heads
    assert trace.layer.tolist()[: layers * heads] == [0, 0, 1, 1]
    assert trace.head.tolist()[: layers * heads] == [0, 1, 0, 1]
    assert np.array_equal(trace.threshold[:4], made.threshold_int.ravel())
    lengths = [len(ids) for ids in made.text_tokenizer().encode([test.texts[i] for i in chosen])]
    assert trace.valid_len.tolist() == list(np.repeat(lengths, layers * heads))
    result = golden.run(made.config, trace.problems())
    assert np.array_equal(result.out, captured.out)


def test_trace_command_output_runs_through_golden(trained, tmp_path, capsys):
    path, again = tmp_path / "t.npz", tmp_path / "u.npz"
    assert main(["trace", str(trained), "--sentences", "4", "--out", str(path)]) == 0
    assert main(["trace", str(trained), "--sentences", "4", "--out", str(again)]) == 0
    assert path.read_bytes() == again.read_bytes()
    trace = trace_file.load(path)
    assert not trace.causal and "4 test sentences" in trace.source
    assert main(["golden", "--trace", str(path), "--out", str(tmp_path / "g.json")]) == 0
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["problems"] == 16 and 0 < report["pruned_fraction"] < 1
    assert main(["trace", str(trained), "--sentences", "999", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--sentences must be in [1," in capsys.readouterr().err
