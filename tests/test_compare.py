"""``leopard compare`` end to end: on the tiny trained export (fast) and on the shipped MiniLM export
(slow), its rows' invariants, its exactness against the golden report of the same sentences' trace,
its reproducibility and its refusals."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_fixtures import TINY_ENGINE, TINY_SETTINGS

from leopard.model.reference import golden, policies, report
from leopard.model.training import capture, compare, data, export, peer_finetune
from leopard.model.training.bert import dense_core
from leopard.model.training.data import pad
from leopard.model.training.train import EXPORT, requantize, train
from leopard.scripts import demo
from leopard.scripts.cli import main

POLICIES = ["dense", "dense, bit-parallel", "leopard, paper bound", "leopard, default levers",
            "leopard, levers + zero-plane skipping", "top-k", "SpAtten", "Sanger", "top-k, fine-tuned",
            "SpAtten, fine-tuned", "Sanger, fine-tuned"]


@pytest.fixture(scope="module")
def dense_control(training_inputs, tmp_path_factory):
    model_dir, spec = training_inputs
    run_dir = tmp_path_factory.mktemp("control")
    train(run_dir, dataclasses.replace(TINY_SETTINGS, prune=False), spec, TINY_ENGINE, model_dir=model_dir,
          progress=False)
    return run_dir / EXPORT


@pytest.fixture(scope="module")
def compared(reference_run, dense_control, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    arguments = ["compare", str(reference_run / EXPORT), "--validation-sentences", "16",
                 "--dense-control", str(dense_control), "--finetune-steps", "2"]
    assert main([*arguments, "--out", str(out / "first")]) == 0
    assert main([*arguments, "--out", str(out / "second"), "--workers", "2"]) == 0
    return out


def test_every_policy_reports_its_figures_and_only_the_engine_reports_speedup(compared):
    rows = {row["policy"]: row for row in json.loads((compared / "first" / "compare.json").read_text())["rows"]}
    assert list(rows) == POLICIES
    for name, row in rows.items():
        low, high = row["accuracy"]["ci95"]
        assert low <= row["accuracy"]["value"] <= high
        assert "difference_vs_dense_control" in row
        assert 0 <= row["kept_fraction"] <= 1 and 0 <= row["full_fraction"] <= 1
        assert ("speedup" in row) == (row["kind"] == "bit-serial") != ("modelled_speedup" in row), name
    dense = rows["dense"]
    assert dense["energy_reduction"] == {"front": 1.0, "head": 1.0, "total": 1.0} and dense["speedup"] == 1.0
    assert rows["dense, bit-parallel"]["accuracy"] == dense["accuracy"]
    for name in ("leopard, paper bound", "leopard, default levers", "leopard, levers + zero-plane skipping"):
        assert rows[name]["cycles"]["dense"] == dense["cycles"]["early_termination"]
        assert rows[name]["kept_fraction"] < 1 and rows[name]["energy_reduction"]["head"] > 1
    assert rows["top-k"]["full_fraction"] == 1.0
    for name in ("top-k", "SpAtten", "Sanger"):
        assert rows[f"{name}, fine-tuned"]["knobs"] == {**rows[name]["knobs"], "finetune_steps": 2}


def test_the_same_command_on_one_process_and_on_two_dask_workers_writes_the_same_files(compared):
    for name in ("compare.json", "compare.md", "pareto.png"):
        assert (compared / "first" / name).read_bytes() == (compared / "second" / name).read_bytes(), name


def test_leopards_cycles_are_the_golden_reports_of_the_same_sentences(reference_run, compared):
    """The paper-bound row's exact cycles equal ``leopard golden``'s figures on a trace of every test
    sentence (all of one token count, so batching pads them alike) of the export requantized as the
    paper does (it was trained with the default levers)."""
    made = export.load(reference_run / EXPORT)
    dataset = data.load_dataset(made.data)
    plain = requantize(made, dataset, compare.PAPER_QUANTIZATION)
    assert not np.array_equal(plain.key_channel_scale, made.key_channel_scale)
    trace = capture.capture(plain, dataset.test, np.arange(len(dataset.test)), "test").trace
    figures = report.golden_report(plain.config, trace.problems())
    row = json.loads((compared / "first" / "compare.json").read_text())["rows"][2]
    assert row["policy"] == "leopard, paper bound"
    assert row["cycles"] == {"early_termination": figures["cycles"]["early_termination"],
                             "dense": figures["cycles"]["dense"]}
    assert row["cycles_head"]["early_termination"] == figures["cycles_head"]["early_termination"]


def test_the_masked_core_is_dense_attention_under_dense_and_drops_what_a_policy_prunes(reference_run):
    made = export.load(reference_run / EXPORT)
    engine = compare.Engine(made)
    test = data.load_dataset(made.data).test
    tokens, valid = pad(made.text_tokenizer().encode(test.texts[:8]))
    with torch.no_grad():
        dense = made.classifier()(tokens, valid, dense_core)
        masked = made.classifier()(tokens, valid, peer_finetune.MaskedCore(engine.core, policies.Dense()))
        assert torch.allclose(dense, masked, atol=1e-6)
        q, k, v = (torch.randn(2, 2, 5, 4, dtype=torch.float32) for _ in range(3))
        mask = torch.ones(2, 5, dtype=torch.bool)
        out = peer_finetune.MaskedCore(engine.core, policies.TopK(np.ones((2, 2), np.int64)))(0, q, k, v, mask)
    chosen = policies.top_k_mask(*_scored(engine, q, k, v, mask))
    assert torch.allclose(out, torch.from_numpy(chosen.reshape(2, 2, 5, 5).astype(np.float32)) @ v, atol=1e-6)


def _scored(engine, q, k, v, mask):
    problems = engine.core.problems(0, q, k, v, mask)
    return golden.scores(problems.q, problems.k), problems.visible(), np.ones(problems.count, np.int64)


def test_fine_tuning_under_a_policy_moves_the_weights_and_calibrates_them_again(reference_run, capsys):
    made = export.load(reference_run / EXPORT)
    dataset = data.load_dataset(made.data)
    tuned = peer_finetune.finetune(made, dataset, policies.Sanger(0.2), 3, print)
    assert "fine-tuning Sanger: step 3/3" in capsys.readouterr().out
    assert any(not np.array_equal(tuned.weights[name], made.weights[name]) for name in made.weights)
    assert not np.array_equal(tuned.scale_k, made.scale_k)
    assert np.array_equal(tuned.threshold, made.threshold)


def test_the_search_keeps_the_cheapest_feasible_point_and_stops_at_the_first_miss():
    costs = {0.0: (True, 10.0), 0.1: (True, 8.0), 0.2: (False, 5.0), 0.3: (True, 1.0)}
    tried = []

    def trial(knobs, policy):
        tried.append(knobs["threshold"])
        feasible, cost = costs[knobs["threshold"]]
        return {"feasible": feasible, "head_pj": cost}

    best, trials = compare.search({"threshold": 0.0}, {"threshold": tuple(costs)}, lambda threshold: None,
                                  trial)
    assert best == {"threshold": 0.1} and tried == [0.0, 0.1, 0.2] and len(trials) == 3


def test_bad_inputs_are_one_line_errors(reference_run, tmp_path, capsys):
    pruned = str(reference_run / EXPORT)
    assert main(["compare", pruned, "--dense-control", pruned, "--out", str(tmp_path / "a")]) == 2
    assert "trained with thresholds" in capsys.readouterr().err
    assert main(["compare", pruned, "--validation-sentences", "100000", "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--validation-sentences must be in" in error
    assert main(["compare", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not any(Path(tmp_path).iterdir())


@pytest.mark.slow
def test_the_shipped_export_on_a_few_sentences(tmp_path):
    assert main(["compare", str(demo.EXPORT), "--sentences", "32", "--validation-sentences", "32",
                 "--out", str(tmp_path)]) == 0
    rows = {row["policy"]: row for row in json.loads((tmp_path / "compare.json").read_text())["rows"]}
    assert rows["leopard, default levers"]["speedup"] > 1.5
    assert rows["leopard, default levers"]["energy_reduction"]["head"] > 2
