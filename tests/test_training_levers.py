"""The training-side levers of fewer bit planes: outlier-aware quantization (``clip_percentile``), finer
key scaling folded into the query (``key_block``), re-quantizing an export, and cost-aware training
(``plane_cost``: the planes proxy and its slack)."""

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from training_fixtures import TINY_BERT, TINY_ENGINE, TINY_SETTINGS

from leopard.hw.errors import LeopardError
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file
from leopard.model.training import bert, export, quantize
from leopard.model.training.data import load_dataset, pad
from leopard.model.training.pruned_attention import (
    PlaneCost,
    PrunedCore,
    Thresholds,
    plane_proxy,
    plane_slack,
)
from leopard.model.training.train import (
    CHECKPOINT,
    EXPORT,
    FINETUNED,
    Trainer,
    center_keys,
    mean_keys,
    requantize,
    settings_of,
    train,
)
from leopard.scripts.cli import main

TOP = (1 << (TINY_ENGINE.k_bits - 1)) - 1


@pytest.fixture(scope="module")
def tiny_batch():
    torch.manual_seed(4)
    model = bert.Classifier(TINY_BERT, 2).eval()
    ids = torch.randint(1000, 3000, (6, 11))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[2, 7:] = False
    return model, ids, valid


def _float_qk(model, ids, valid):
    """Per layer, the float ``q`` and ``k`` ``[tokens, heads, Dh]`` of the valid tokens."""
    seen = []

    def core(layer, q, k, v, mask):
        seen.append(tuple(x.transpose(1, 2)[mask].double().numpy() for x in (q, k)))
        return bert.dense_core(layer, q, k, v, mask)

    with torch.no_grad():
        model(ids, valid, core)
    return seen


def _captured(model, ids, valid, quant):
    theta = np.zeros(quant.scale_q.shape)
    core = quantize.HardwareCore(
        TINY_ENGINE, quant, theta, quantize.threshold_int(theta, quant.score_scale(), TINY_ENGINE), capture=True
    )
    with torch.no_grad():
        model(ids, valid, core)
    return core.captured


def test_without_clipping_the_scales_are_the_largest_values(tiny_batch):
    model, ids, valid = tiny_batch
    quant = quantize.calibrate(model, [(ids, valid)], TINY_ENGINE)
    for layer, (q, k) in enumerate(_float_qk(model, ids, valid)):
        assert np.array_equal(quant.scale_q[layer] * TOP, np.abs(q).max(axis=(0, 2)))
        assert np.array_equal(quant.scale_k[layer] * TOP, np.abs(k).max(axis=(0, 2)))
    assert (quant.key_channel == 1.0).all()


def test_clipping_saturates_q_and_k_at_the_calibrated_percentile(tiny_batch):
    model, ids, valid = tiny_batch
    settings = quantize.QuantSettings(clip_percentile=90.0, clip_q_percentile=80.0)
    quant = quantize.calibrate(model, [(ids, valid)], TINY_ENGINE, settings)
    captured = _captured(model, ids, valid, quant)
    rows = valid.numpy()
    for layer, (q, k) in enumerate(_float_qk(model, ids, valid)):
        assert np.allclose(quant.scale_q[layer] * TOP, np.percentile(np.abs(q), 80, axis=(0, 2)), rtol=1e-12)
        assert np.allclose(quant.scale_k[layer] * TOP, np.percentile(np.abs(k), 90, axis=(0, 2)), rtol=1e-12)
        k_int = captured[layer].k.transpose(0, 2, 1, 3)[rows]
        saturated = (np.abs(k_int) == TOP).mean()
        assert 0.08 <= saturated <= 0.15, "about a tenth of the key elements sit at the range's end"


def test_key_blocks_give_each_block_its_own_range_and_the_query_carries_it(tiny_batch):
    model, ids, valid = tiny_batch
    per_head = quantize.calibrate(model, [(ids, valid)], TINY_ENGINE)
    quant = quantize.calibrate(model, [(ids, valid)], TINY_ENGINE, quantize.QuantSettings(key_block=1))
    assert np.array_equal(quant.key_channel.max(axis=-1), np.ones((2, 2)))
    assert np.array_equal(quant.scale_k, per_head.scale_k), "the widest channel keeps the head's step"
    rows = valid.numpy()
    floats = _float_qk(model, ids, valid)
    errors = {}
    for name, scales in (("head", per_head), ("channel", quant)):
        first = _captured(model, ids, valid, scales)[0]
        q, k = floats[0]
        k_int = first.k.transpose(0, 2, 1, 3)[rows]
        q_int = first.q.transpose(0, 2, 1, 3)[rows]
        if name == "channel":
            assert (np.abs(k_int).max(axis=0) == TOP).all(), "every key channel spans the whole range"
        exact = np.einsum("thd,uhd->hut", q, k) / math.sqrt(TINY_BERT.head_dim)
        integer = np.einsum("thd,uhd->hut", q_int, k_int) * scales.score_scale()[0][:, None, None]
        errors[name] = float(np.abs(integer - exact).max() / np.abs(exact).max())
    assert errors["channel"] < 0.02 and errors["head"] < 0.02, "one integer dot product, one scale per head"


def test_bad_quantization_settings_are_one_line_errors():
    with pytest.raises(LeopardError, match=r"--clip-percentile must be in \[50, 100\], got 40"):
        quantize.QuantSettings(clip_percentile=40.0).check(4)
    with pytest.raises(LeopardError, match=r"--clip-q-percentile must be in \[50, 100\], got 101"):
        quantize.QuantSettings(clip_q_percentile=101.0).check(4)
    with pytest.raises(LeopardError, match="--key-block must be 0 or a divisor of the head dim 4, got 3"):
        quantize.QuantSettings(key_block=3).check(4)
    for bad, message in (({"plane_cost": -1.0}, "--plane-cost must be at least 0"),
                         ({"distill": -0.5}, "--distill must be at least 0"),
                         ({"plane_proxy": "cubic"}, "--plane-proxy must be one of log, sigmoid")):
        with pytest.raises(LeopardError, match=message):
            replace(TINY_SETTINGS, **bad).check()


def test_requantizing_with_the_exports_own_settings_reproduces_it(training_inputs, reference_run):
    made = export.load(reference_run / EXPORT)
    data = load_dataset(made.data)
    assert made.training["clip_percentile"] == 99.0 and made.training["key_block"] == 1
    again = requantize(made, data, settings_of(made).quant())
    for name in (*export.TABLES, "key_channel_scale"):
        assert np.array_equal(getattr(made, name), getattr(again, name)), name
    plain = requantize(made, data, quantize.QuantSettings(clip_percentile=100.0, key_block=0))
    assert (plain.scale_k >= made.scale_k).all()
    assert (plain.scale_v == made.scale_v).all()
    assert (plain.key_channel_scale == 1).all() and plain.version() == 1
    assert plain.training["clip_percentile"] == 100.0 and plain.training["key_block"] == 0
    assert plain.training["requantized_from"] == {"clip_percentile": 99.0, "key_block": 1,
                                                  "clip_q_percentile": 100.0}
    assert np.array_equal(plain.threshold, made.threshold)


def test_an_export_with_key_scales_is_version_2_and_one_without_is_version_1(training_inputs, reference_run, tmp_path):
    made = export.load(reference_run / EXPORT)
    assert made.version() == 2 and (made.key_channel_scale < 1).any()
    with np.load(reference_run / EXPORT) as archive:
        assert int(archive["version"]) == 2
        assert np.array_equal(archive["key_channel_scale"], made.key_channel_scale)
    plain = requantize(made, load_dataset(made.data), quantize.QuantSettings(key_block=0))
    export.save(plain, tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as archive:
        assert int(archive["version"]) == 1 and "key_channel_scale" not in archive.files
    assert (export.load(tmp_path / "plain.npz").key_channel_scale == 1).all()


def test_requantize_command(reference_run, tmp_path, capsys):
    out = tmp_path / "clipped.npz"
    assert main(["requantize", str(reference_run / EXPORT), "--clip-percentile", "99", "--out", str(out)]) == 0
    assert "keys clipped at percentile 99, queries at 100" in capsys.readouterr().out
    assert export.load(out).training["clip_percentile"] == 99.0
    assert main(["requantize", str(reference_run / EXPORT), "--key-block", "3", "--out", str(tmp_path / "x.npz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()


def test_a_finished_run_reexports_under_other_quantization_without_training(training_inputs, reference_run, tmp_path):
    model_dir, spec = training_inputs
    (tmp_path / CHECKPOINT).write_bytes((reference_run / CHECKPOINT).read_bytes())
    settings = replace(TINY_SETTINGS, clip_percentile=95.0)
    summary = train(tmp_path, settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    assert (tmp_path / "train_log.json").read_bytes() == (reference_run / "train_log.json").read_bytes()
    assert summary["settings"]["clip_percentile"] == 95.0
    assert (export.load(tmp_path / EXPORT).scale_k < export.load(reference_run / EXPORT).scale_k).all()
    with pytest.raises(LeopardError, match=r"was made with plane_cost 0\.0, not 1\.0"):
        train(tmp_path, replace(TINY_SETTINGS, plane_cost=1.0), spec, TINY_ENGINE, model_dir=model_dir,
              progress=False)


def _bound_slack(q_int, k_int, r):
    """``UB_r − s`` of the engine's bound, for every key of ``k_int`` ``[N, D]`` (8-bit keys)."""
    problem_q, problem_k = q_int[None, None, :], k_int[None]
    acc = golden.scores(problem_q, problem_k >> r)[0, 0]
    bound = acc * (1 << r) + ((1 << r) - 1) * golden.positive_sum(problem_q)[0, 0]
    return bound - golden.scores(problem_q, problem_k)[0, 0]


def test_the_proxys_slack_is_the_bounds_mean_slack_over_uniform_low_bits():
    """``(2^r − 1)·G`` with ``G = ½·Σ|q_d|·s_k·c_d/√Dh`` is the mean of ``UB_r − s`` (in score units) over
    keys whose ``r`` low bits take every value equally often (here: random low bits and their complements
    ``2^r − 1 − m``, whose mean is that of all values since ``UB_r − s`` is linear in them)."""
    rng = np.random.default_rng(5)
    dim, s_q, s_k = 4, 0.03, 0.02
    channel = np.array([1.0, 0.5, 0.25, 0.75])
    q_int = rng.integers(-127, 128, dim)
    q = torch.tensor(q_int * s_q / channel)[None, None, None, :]
    unit = torch.tensor(s_k * channel / math.sqrt(dim))[None]
    scale = s_q * s_k / math.sqrt(dim)
    high = rng.integers(-8, 8, dim)
    for r in range(1, 8):
        residues = rng.integers(0, 1 << r, (64, dim))
        residues = np.concatenate([residues, (1 << r) - 1 - residues])
        k_int = high * (1 << r) + residues
        mean_slack = _bound_slack(q_int, k_int, r).mean() * scale
        assert float(((1 << r) - 1) * plane_slack(q, unit)) == pytest.approx(mean_slack, rel=1e-9)


def test_the_plane_proxies_count_the_planes_of_the_expected_bound():
    bits, slack = 8, torch.tensor(0.1)
    theta = torch.tensor([0.0])
    scores = (torch.linspace(-40.0, 2.0, 4201) + 0.003)[None, None, None, :]
    log_cost, sigmoid_cost = PlaneCost(torch.ones(1), bits, "log"), PlaneCost(torch.ones(1), bits, "sigmoid")
    log = plane_proxy(scores, theta, slack, log_cost, 1.0)[0, 0, 0]
    steps = plane_proxy(scores, theta, slack, sigmoid_cost, 1e-6)[0, 0, 0]
    s = scores[0, 0, 0]
    count = 1 + sum((s + ((1 << r) - 1) * slack >= 0).int() for r in range(1, bits))
    assert torch.equal(steps, count.to(steps.dtype)), "at a vanishing temperature: the step count"
    assert (log[s >= 0] == bits).all() and log[0] == 1 and (log.diff() >= 0).all()
    below = s < 0
    assert ((count[below] - log[below]) >= -1e-5).all() and ((count[below] - log[below]) <= 1 + 1e-5).all()


def test_the_plane_cost_reaches_q_and_k_but_not_the_thresholds():
    """(With hard thresholds, so that no other path reaches them.)"""
    torch.manual_seed(2)
    model = bert.Classifier(TINY_BERT, 2)
    thresholds = Thresholds(TINY_BERT.num_hidden_layers, TINY_BERT.num_attention_heads)
    thresholds.theta.data.fill_(0.5)
    ids = torch.randint(1000, 2000, (4, 7))
    valid = torch.ones_like(ids, dtype=torch.bool)
    valid[1, 4:] = False
    for proxy in ("log", "sigmoid"):
        cost = PlaneCost(torch.full((2, 2, 4), 0.01), TINY_ENGINE.k_bits, proxy)
        core = PrunedCore(thresholds, soft=False, temperature=0.5, planes=cost)
        model(ids, valid, core)
        core.plane_mean().backward()
        assert 1.0 <= core.plane_mean().item() <= TINY_ENGINE.k_bits
        assert thresholds.theta.grad is None
        key = model.bert.encoder.layer[0].attention.self.key.weight
        query = model.bert.encoder.layer[0].attention.self.query.weight
        assert key.grad.abs().sum() > 0 and query.grad.abs().sum() > 0
        model.zero_grad()


def test_cost_aware_training_runs_reproducibly_and_resumes(training_inputs, tmp_path):
    model_dir, spec = training_inputs
    settings = replace(TINY_SETTINGS, plane_cost=2.0, clip_percentile=99.0, key_block=2)
    train(tmp_path / "a", settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    interrupted = Trainer(tmp_path / "b", settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    for _ in range(interrupted.schedule.finetune + 2):
        interrupted.step()
    interrupted.save()
    train(tmp_path / "b", settings, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    for name in (EXPORT, "evaluation.json", "train_log.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    pruning = [record for record in log if record["phase"] in ("soft", "hard")]
    assert pruning and all(1.0 <= record["planes_proxy"] <= TINY_ENGINE.k_bits for record in pruning)
    made = export.load(tmp_path / "a" / EXPORT)
    assert made.version() == 2 and made.training["plane_cost"] == 2.0


def _manifest(tmp_path, reference_run, variants, **extra):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": "leopard-levers/1", "sentences": 4, "seed": 1,
                                "variants": variants, **extra}))
    return path


def test_bench_levers_runs_each_variant_under_each_hardware_setting(reference_run, tmp_path, capsys):
    exported = str(reference_run / EXPORT)
    manifest = _manifest(tmp_path, reference_run, [
        {"name": "paper", "export": exported},
        {"name": "clip 90", "export": exported, "quantization": {"clip_percentile": 90.0}},
    ])
    argv = ["bench-levers", str(manifest), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "out" / "levers.json").read_text())["rows"]
    assert [(r["variant"], r["hardware"]) for r in rows] == [
        ("paper", "paper bound"), ("paper", "zero-plane skipping"),
        ("clip 90", "paper bound"), ("clip 90", "zero-plane skipping")]
    assert rows[0]["planes_saved"] == 0.0 and rows[2]["training_levers"] == "2 (k 90, q 100)"
    trace = trace_file.load(tmp_path / "work" / "clip-90" / "trace.npz")
    for row, skip in zip(rows[2:], (False, True), strict=True):
        cfg = trace.config.replace(skip_zero_planes=skip)
        early = golden.run(cfg, trace.problems())
        assert row["mean_planes"] == round(float(early.planes[early.visible].mean()), 6)
    evaluation = json.loads((reference_run / "evaluation.json").read_text())["evaluation"]
    assert rows[0]["accuracy_quantized_pruned"] == evaluation["accuracy"]["quantized_pruned"]
    table = capsys.readouterr().out
    assert table.count("| clip 90 |") == 2 and "wrote" in table
    made = (tmp_path / "work" / "clip-90" / "trace.npz").stat().st_mtime_ns
    assert main(argv) == 0
    assert (tmp_path / "work" / "clip-90" / "trace.npz").stat().st_mtime_ns == made


@pytest.mark.parametrize(("variants", "extra", "message"), [
    ([], {}, "'variants' must be a non-empty list"),
    ([{"name": "x"}], {}, "variant 0 has no 'export'"),
    ([{"name": "x", "export": "missing.npz"}], {}, "missing.npz: no such file"),
    ([{"name": "x", "export": "E", "quantization": {"clip": 99}}], {}, "unknown quantization setting 'clip'"),
    ([{"name": "x", "export": "E"}], {"synthesis": {"fast": "s.json"}}, "unknown hardware setting 'fast'"),
    ([{"name": "x", "export": "E"}], {"synthesis": {"paper bound": "E"}}, "not a JSON file"),
    ([{"name": "a b", "export": "E"}, {"name": "a-b", "export": "E"}], {}, "gives the work folder 'a-b' of 'a b'"),
    ([{"name": 3, "export": "E"}], {}, "variant 0 has no 'name' (a non-empty string)"),
    ([{"name": "x", "export": "E", "quantization": {"key_block": "1"}}], {}, "must map settings to numbers"),
    ([{"name": "x", "export": "E", "quantization": {"key_block": 3}}], {}, "--key-block must be 0 or a divisor"),
    ([{"name": "x", "export": "E"}], {"sentences": 0}, "'sentences' must be a whole number of at least 1"),
])
def test_bench_levers_refuses_bad_manifests(reference_run, tmp_path, capsys, variants, extra, message):
    def real(path):
        return str(reference_run / EXPORT) if path == "E" else path

    variants = [{**v, "export": real(v["export"])} if "export" in v else v for v in variants]
    if "synthesis" in extra:
        extra = {**extra, "synthesis": {key: real(value) for key, value in extra["synthesis"].items()}}
    manifest = _manifest(tmp_path, reference_run, variants, **extra)
    assert main(["bench-levers", str(manifest), "--out", str(tmp_path / "out"),
                 "--work", str(tmp_path / "work")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_centering_the_keys_zeroes_their_mean_and_leaves_the_dense_model_unchanged(tiny_batch):
    model, ids, valid = tiny_batch
    model = copy.deepcopy(model)
    before = model(ids, valid)
    batches = [(ids, valid)]
    assert max(float(mean.abs().max()) for mean in mean_keys(model, batches)) > 0.05
    center_keys(model, batches)
    assert max(float(mean.abs().max()) for mean in mean_keys(model, batches)) < 1e-5
    assert torch.allclose(model(ids, valid), before, atol=1e-5)


def test_a_centered_run_learns_its_thresholds_on_centered_keys(training_inputs, reference_run, tmp_path):
    model_dir, spec = training_inputs
    train(tmp_path, replace(TINY_SETTINGS, center_keys=True), spec, TINY_ENGINE, model_dir=model_dir,
          progress=False)
    centered, plain = export.load(tmp_path / EXPORT), export.load(reference_run / EXPORT)
    assert centered.training["center_keys"] is True
    key_bias = "bert.encoder.layer.0.attention.self.key.bias"
    assert not np.array_equal(centered.weights[key_bias], plain.weights[key_bias])
    assert not np.array_equal(centered.threshold, plain.threshold)


def test_bench_levers_refuses_a_synthesis_report_of_another_hardware_setting(reference_run, tmp_path, capsys):
    report = tmp_path / "synth.json"
    report.write_text(json.dumps({"schema": "leopard-synth/1", "results": [],
                                  "config": {"skip_zero_planes": True}, "target": {"device": "ECP5"}}))
    manifest = _manifest(tmp_path, reference_run, [{"name": "x", "export": str(reference_run / EXPORT)}],
                         synthesis={"paper bound": str(report)})
    assert main(["bench-levers", str(manifest), "--out", str(tmp_path / "out"),
                 "--work", str(tmp_path / "work")]) == 2
    assert "was made with skip_zero_planes True, not False (paper bound)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def _divergence_from(teacher: bert.Classifier, trainer: Trainer) -> float:
    """``KL(teacher ‖ the trained model under its hard thresholds)`` over the training sentences,
    summed."""
    trainer.resume()
    ids, valid = pad(trainer.train_ids)
    with torch.no_grad():
        taught = torch.log_softmax(teacher(ids, valid), dim=-1)
        pruned = trainer.model.eval()(ids, valid, PrunedCore(trainer.thresholds, soft=False))
    return float(torch.nn.functional.kl_div(torch.log_softmax(pruned, dim=-1), taught, log_target=True,
                                            reduction="sum"))


def test_distillation_keeps_the_pruned_model_near_the_finetuned_one(training_inputs, reference_run, tmp_path):
    """From the same fine-tuned checkpoint and under the same thresholds (the 95th percentile, not
    learned), a distillation weight leaves the pruned model's class distributions nearer the fine-tuned
    model's (half the divergence or less); the log records it, a
    resume in the middle of the pruning phases gives the same files, and a resume without
    ``finetuned.pt`` is refused."""
    model_dir, spec = training_inputs
    settings = replace(TINY_SETTINGS, lam=0.0, soft_steps=2, hard_steps=30, init_percentile=95.0, theta_lr=0.0)
    finetuned = bert.Classifier(TINY_BERT, 2)
    finetuned.load_state_dict(torch.load(reference_run / FINETUNED, weights_only=True)["model"])
    divergence = {}
    for weight in (0.0, 10.0):
        run_dir = tmp_path / f"distill-{weight:g}"
        run_dir.mkdir()
        (run_dir / CHECKPOINT).write_bytes((reference_run / FINETUNED).read_bytes())
        train(run_dir, replace(settings, distill=weight), spec, TINY_ENGINE, model_dir=model_dir, progress=False)
        log = json.loads((run_dir / "train_log.json").read_text())
        assert all(("distillation" in record) == (weight > 0 and record["phase"] != "finetune") for record in log)
        trained = Trainer(run_dir, replace(settings, distill=weight), spec, TINY_ENGINE, model_dir=model_dir)
        divergence[weight] = _divergence_from(finetuned.eval(), trained)
    assert divergence[10.0] < 0.5 * divergence[0.0], divergence
    distilled = replace(settings, distill=10.0)
    interrupted = Trainer(tmp_path / "resumed", distilled, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    for _ in range(interrupted.schedule.finetune + 3):
        interrupted.step()
    interrupted.save()
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / CHECKPOINT).write_bytes((tmp_path / "resumed" / CHECKPOINT).read_bytes())
    train(tmp_path / "resumed", distilled, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    for name in (EXPORT, "evaluation.json", "train_log.json"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "distill-10" / name).read_bytes(), name
    with pytest.raises(LeopardError, match=r"--distill needs .*finetuned\.pt"):
        train(tmp_path / "orphan", distilled, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
