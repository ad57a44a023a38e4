"""Training runs on a tiny model: reproducible, resumable, guarded against mixed settings; the sweep;
the ``train`` command."""

import importlib.util
import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
from training_fixtures import TINY_ENGINE, TINY_SETTINGS

from leopard.hw import fanout
from leopard.hw.errors import LeopardError
from leopard.model.reference import plots
from leopard.model.training import export, sweep
from leopard.model.training.train import CHECKPOINT, EXPORT, FINETUNED, Schedule, Trainer, temperature, train
from leopard.scripts.cli import main

OUTPUTS = (EXPORT, "evaluation.json", "train_log.json")


def test_the_same_run_twice_gives_identical_files(training_inputs, reference_run, tmp_path):
    model_dir, spec = training_inputs
    train(tmp_path, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (reference_run / name).read_bytes(), name


def test_an_interrupted_run_resumes_to_the_same_result(training_inputs, reference_run, tmp_path):
    model_dir, spec = training_inputs
    interrupted = Trainer(tmp_path, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    schedule = interrupted.schedule
    for _ in range(schedule.finetune + 3):
        interrupted.step()
    interrupted.save()
    resumed = Trainer(tmp_path, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    resumed.resume()
    assert resumed.state.step == schedule.finetune + 3 and resumed.state.theta_ready
    resumed.run()
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (reference_run / name).read_bytes(), name


def test_phases_follow_the_schedule(reference_run):
    log = json.loads((reference_run / "train_log.json").read_text())
    schedule = Schedule.of(TINY_SETTINGS, 72)
    assert [r["phase"] for r in log] == (
        ["finetune"] * schedule.finetune + ["soft"] * schedule.soft + ["hard"] * schedule.hard)
    soft = [r for r in log if r["phase"] == "soft"]
    assert soft[0]["temperature"] == TINY_SETTINGS.temperature_start
    assert soft[-1]["temperature"] == pytest.approx(TINY_SETTINGS.temperature_end)
    assert log[-1]["lr"] > 0 and all(r["pruned"] == 0 for r in log if r["phase"] == "finetune")
    assert (reference_run / FINETUNED).exists() and (reference_run / CHECKPOINT).exists()


def test_temperature_falls_geometrically():
    values = [temperature(TINY_SETTINGS, step) for step in range(TINY_SETTINGS.soft_steps)]
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert values[0] == 0.5 and values[-1] == pytest.approx(0.05)
    assert max(ratios) == pytest.approx(min(ratios))


def test_a_finished_run_refuses_other_settings(training_inputs, reference_run):
    model_dir, spec = training_inputs
    with pytest.raises(LeopardError, match=r"was made with lam 0\.2, not 0\.3"):
        train(reference_run, replace(TINY_SETTINGS, lam=0.3), spec, TINY_ENGINE, model_dir=model_dir,
              progress=False)


def test_a_finetuned_checkpoint_serves_any_lambda_but_not_another_finetune(training_inputs, reference_run, tmp_path):
    model_dir, spec = training_inputs
    (tmp_path / CHECKPOINT).write_bytes((reference_run / FINETUNED).read_bytes())
    with pytest.raises(LeopardError, match="was made with lr"):
        Trainer(tmp_path, replace(TINY_SETTINGS, lr=1e-4), spec, TINY_ENGINE, model_dir=model_dir).resume()
    trainer = Trainer(tmp_path, replace(TINY_SETTINGS, lam=0.5), spec, TINY_ENGINE, model_dir=model_dir)
    trainer.resume()
    assert trainer.state.step == trainer.schedule.finetune


def test_sweep_writes_the_table_and_plots(training_inputs, tmp_path):
    model_dir, spec = training_inputs
    settings = replace(TINY_SETTINGS, epochs=0.5)
    summary = sweep.run(tmp_path, [0.1, 0.5], settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    assert [row["lambda"] for row in summary["rows"]] == [0.1, 0.5]
    assert not (tmp_path / "lambda-0.5" / FINETUNED).exists(), "λ = 0.5 resumes from λ = 0.1's fine-tuning"
    logs = [json.loads((tmp_path / name / "train_log.json").read_text()) for name in ("lambda-0.1", "lambda-0.5")]
    finetune = [record for record in logs[0] if record["phase"] == "finetune"]
    assert logs[1][: len(finetune)] == finetune
    table = (tmp_path / "sweep.md").read_text()
    assert table.count("\n| 0.") == 2 and "scores pruned" in table
    control = json.loads((tmp_path / "dense-control" / "evaluation.json").read_text())["evaluation"]
    assert control["pruned_fraction"] == 0
    assert control["accuracy"]["quantized_pruned"] == control["accuracy"]["quantized"]
    assert "Dense control" in table
    for name in ("tradeoff.png", "thresholds-lambda-0.1.png", "thresholds-lambda-0.5.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweep_on_two_dask_workers_writes_the_serial_sweeps_files(training_inputs, tmp_path):
    model_dir, spec = training_inputs
    settings = replace(TINY_SETTINGS, epochs=0.5)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}"
        sweep.run(out, [0.1, 0.5], settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False,
                  pool=fanout.Pool(workers))
        outputs[workers] = {path.relative_to(out): path.read_bytes() for path in sorted(out.rglob("*"))
                            if path.is_file() and path.suffix != ".pt" and path.name != "timing.json"}
    assert len(outputs[1]) == 3 * len(OUTPUTS) + 5  # and sweep.json, sweep.md, three plots
    assert outputs[2] == outputs[1]


def test_train_command_on_a_users_csv(training_inputs, tmp_path, capsys):
    model_dir, spec = training_inputs
    args = ["train", "--model", str(model_dir), "--data", spec.data, "--text-column", "review",
            "--label-column", "sentiment", "--group-column", "film", "--max-tokens", "12", "--epochs", "1", "--soft-steps", "2",
            "--hard-steps", "1", "--no-progress", "--config", str(_tiny_config(tmp_path)),
            "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "accuracy_quantized_pruned" in out and "export.npz" in out
    assert main(["evaluate", str(tmp_path / "run" / EXPORT)]) == 0


def test_train_command_names_a_missing_column(training_inputs, tmp_path, capsys):
    _, spec = training_inputs
    args = ["train", "--data", spec.data, "--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert "has no column 'text'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _tiny_config(tmp_path):
    path = tmp_path / "engine.json"
    path.write_text(TINY_ENGINE.to_json())
    return path


def test_without_a_soft_phase_the_thresholds_start_at_the_percentile(training_inputs, tmp_path):
    model_dir, spec = training_inputs
    settings = replace(TINY_SETTINGS, soft_steps=0, hard_steps=2)
    train(tmp_path, settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    made = export.load(tmp_path / EXPORT)
    assert (made.threshold != 0).all()
    summary = json.loads((tmp_path / "evaluation.json").read_text())
    assert 0.2 < summary["evaluation"]["pruned_fraction"] < 0.4


def test_a_finished_run_is_not_trained_again(training_inputs, reference_run):
    model_dir, spec = training_inputs
    stamp = (reference_run / EXPORT).stat().st_mtime_ns
    summary = train(reference_run, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    assert summary == json.loads((reference_run / "evaluation.json").read_text())
    assert (reference_run / EXPORT).stat().st_mtime_ns == stamp


def test_a_missing_package_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "tqdm" else real(name, *rest))
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "leopard train: error: the package tqdm is not installed; run `make setup`\n"


@pytest.mark.parametrize("content", [b"junk\n", b"PK\x03\x04 truncated"])
def test_an_unreadable_checkpoint_is_a_one_line_error(training_inputs, tmp_path, content):
    model_dir, spec = training_inputs
    (tmp_path / CHECKPOINT).write_bytes(content)
    with pytest.raises(LeopardError, match=r"is unreadable .*; delete it to restart"):
        train(tmp_path, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"head_dim": 8}, "head_dim 8 differs from the model's 4"),
        ({"threshold_regs": 3}, "threshold_regs 3 cannot hold 4"),
        ({"max_seq_len": 8}, "max_seq_len 8 is below the 12 tokens"),
    ],
)
def test_an_engine_config_the_model_cannot_use_is_refused_before_training(training_inputs, tmp_path, change, message):
    model_dir, spec = training_inputs
    with pytest.raises(LeopardError, match=message):
        train(tmp_path, TINY_SETTINGS, spec, TINY_ENGINE.replace(**change), model_dir=model_dir, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()


def test_plots_are_byte_identical(tmp_path):
    rows = [{"lambda": 0.1, "pruned_fraction": 0.7, "accuracy_quantized_pruned": 80.0, "accuracy_float": 80.5}]
    for name in ("a.png", "b.png"):
        plots.tradeoff(rows, 79.0, {"float": 80.2}, tmp_path / name)
        plots.threshold_map(np.ones((2, 3)), np.full((2, 3), 0.5), "t", tmp_path / f"map-{name}")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "map-a.png").read_bytes() == (tmp_path / "map-b.png").read_bytes()
