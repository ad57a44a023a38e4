"""The vision family: IDX images, the project's own small ViT, and its traces and thresholds through the
hooked attention (tiny models, randomly initialized or trained here on tiny image sets), checked against
the golden model and the RTL."""

import dataclasses
import gzip
import json

import numpy as np
import pytest
import torch

from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.model.reference import golden
from leopard.model.reference import trace as trace_file
from leopard.model.training import images, quantize
from leopard.model.training.hf_attention import AttentionHook
from leopard.model.training.hf_models import HFModel
from leopard.model.training.hf_trace import model_trace
from leopard.model.training.hf_train import ModelTrainSettings, initial_thresholds, train_model
from leopard.scripts.cli import main

transformers = pytest.importorskip("transformers")

ENGINE = preset("tiny")


def idx_bytes(values: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, values.ndim]) + b"".join(n.to_bytes(4, "big") for n in values.shape)
    return header + values.astype(np.uint8).tobytes()


def write_idx_set(folder, train=96, test=48, side=28, classes=3, compress=True):
    """Images whose class is which third of the picture is bright, so a tiny ViT can learn them."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, classes, count)
        pixels = rng.integers(0, 60, (count, side, side))
        band = side // classes
        for i, label in enumerate(labels):
            pixels[i, label * band:(label + 1) * band] += 180
        for stem, values in ((f"{prefix}-images-idx3-ubyte", pixels), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(values)
            if compress:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / stem).write_bytes(data)
    return folder


def test_idx_folders_load_with_their_own_split_and_classes(tmp_path):
    for compress in (True, False):
        found = images.load(str(write_idx_set(tmp_path / str(compress), compress=compress)))
        assert (len(found.train), len(found.test), found.classes) == (96, 48, 3)
        assert found.train.pixels.shape == (96, 28, 28) and found.train.pixels.dtype == np.uint8
    pixels = images.pixel_values(np.array([[[0, 255]]], np.uint8))
    assert pixels.shape == (1, 1, 1, 2) and pixels.flatten().tolist() == [-1.0, 1.0]


def write_png_folder(folder, idx_folder, names=("boot", "coat", "shirt")):
    """The images of an IDX set as PNG files in ``train/<class>/`` and ``test/<class>/``."""
    from PIL import Image

    found = images.load(str(idx_folder))
    for split, part in (("train", found.train), ("test", found.test)):
        for name in names:
            (folder / split / name).mkdir(parents=True)
        for i, (pixels, label) in enumerate(zip(part.pixels, part.labels, strict=True)):
            Image.fromarray(pixels).save(folder / split / names[label] / f"{i:03d}.png")
    return folder, found


def test_an_image_folder_loads_as_its_idx_twin_in_class_folder_order(tmp_path):
    """The PNG folder of an IDX set holds the same pixels and labels, sorted by class and file name; an
    RGB image is read as its grayscale."""
    from PIL import Image

    folder, twin = write_png_folder(tmp_path / "png", write_idx_set(tmp_path / "idx"))
    found = images.load(str(folder))
    assert (len(found.train), len(found.test), found.classes) == (96, 48, 3)
    for part, expected in ((found.train, twin.train), (found.test, twin.test)):
        order = np.lexsort((np.arange(len(expected)), expected.labels))
        np.testing.assert_array_equal(part.pixels, expected.pixels[order])
        np.testing.assert_array_equal(part.labels, expected.labels[order])
    gray = np.asarray(Image.fromarray(twin.test.pixels[0]).convert("RGB").convert("L"))
    Image.fromarray(twin.test.pixels[0]).convert("RGB").save(folder / "test" / "boot" / "000.png")
    np.testing.assert_array_equal(images.load(str(folder)).test.pixels[0], gray)


def test_bad_image_class_folders_are_refused_in_one_line(tmp_path):
    from PIL import Image

    folder, _ = write_png_folder(tmp_path / "png", write_idx_set(tmp_path / "idx"))
    Image.new("L", (14, 28)).save(folder / "train" / "coat" / "zz.png")
    with pytest.raises(LeopardError, match=r"zz\.png: 14×28 pixels, the others 28×28"):
        images.load(str(folder))
    (folder / "train" / "coat" / "zz.png").write_bytes(b"not an image")
    with pytest.raises(LeopardError, match=r"zz\.png: not a readable image"):
        images.load(str(folder))
    (folder / "train" / "coat" / "zz.png").unlink()
    (folder / "test" / "dress").mkdir()
    with pytest.raises(LeopardError, match="train/ and test/ must hold the same class folders"):
        images.load(str(folder))


def test_bad_image_folders_are_refused_in_one_line(tmp_path):
    folder = write_idx_set(tmp_path / "set")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(LeopardError, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing"):
        images.load(str(folder))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x03" + bytes(12))
    with pytest.raises(LeopardError, match="not an IDX file of unsigned bytes with 1 dimensions"):
        images.load(str(folder))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(47)))
    with pytest.raises(LeopardError, match="48 test images but 47 labels"):
        images.load(str(folder))
    with pytest.raises(LeopardError, match="not fashion-mnist, a folder of IDX image files or one of train"):
        images.load(str(tmp_path / "nowhere"))


def tiny_vit():
    """A two-layer ViT classifier on 8×8 one-channel images: 4 patches and the CLS token, 4 heads of dim 4."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                                    num_labels=3, attn_implementation="eager")
    model = transformers.ViTForImageClassification(config).eval()
    return HFModel(model, None, "vision", "tiny-vit", 2, 4, 4, 4)


def image_batches(count, seed, size=4):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(count, 1, 8, 8, generator=generator) * 2 - 1
    labels = torch.randint(0, 3, (count,), generator=generator)
    return [(pixels[i:i + size], labels[i:i + size]) for i in range(0, count, size)]


@pytest.fixture(scope="module")
def vision_trace():
    made = tiny_vit()
    traced = model_trace(made, ENGINE, image_batches(8, 1), image_batches(6, 2), 0.6, quantize.QuantSettings(),
                         seed=0, source="test", evaluated=image_batches(8, 3))
    return made, traced


def test_a_vision_trace_is_bidirectional_and_its_outputs_are_the_golden_models(vision_trace):
    """Every image's problems (5 tokens: 4 patches and the CLS) run by the golden model give exactly the
    outputs the model computed through the engine; the accuracy figures count the traced and the
    evaluated images."""
    made, traced = vision_trace
    trace = traced.trace
    assert not trace.causal and trace.count == 6 * 2 * 4 and trace.kv_group is None
    assert trace.valid_len.tolist() == [5] * trace.count
    core = quantize.HardwareCore(ENGINE, traced.quant, theta=traced.threshold * traced.quant.score_scale(),
                                 threshold=traced.threshold, capture=True)
    pixels = torch.cat([batch[0] for batch in image_batches(6, 2)])
    with torch.no_grad(), AttentionHook(made.model, core):
        made.model(pixel_values=pixels)
    outputs = np.stack([c.out for c in core.captured], axis=1).reshape(-1, 5, ENGINE.head_dim)
    result = golden.run(ENGINE, trace.problems())
    assert np.array_equal(result.out[:, :5], outputs)
    assert result.kept.sum() + round(traced.pruned * result.visible.sum()) == result.visible.sum()
    figures = traced.figures
    assert figures["images"] == 14
    assert 0 <= figures["accuracy"]["engine"]["value"] <= 100
    assert figures["loss"]["dense"]["ci95"][0] <= figures["loss"]["dense"]["value"]


def test_a_wrong_threshold_changes_the_vision_outputs(vision_trace):
    """The comparison above can fail: the golden model with every threshold raised by one decides other
    keys and gives other outputs on the same problems."""
    _, traced = vision_trace
    problems = traced.trace.problems()
    raised = golden.run(ENGINE, dataclasses.replace(problems, threshold=problems.threshold + 1))
    assert not np.array_equal(raised.kept, golden.run(ENGINE, problems).kept)


def test_vision_threshold_training_moves_the_thresholds():
    """Soft steps with a large λ on the classifier's cross-entropy raise every head's threshold."""
    made = tiny_vit()
    batches = image_batches(16, 4)
    settings = ModelTrainSettings(lam=5.0, soft_steps=4, hard_steps=2, lr=1e-4, theta_lr=0.2)
    start = initial_thresholds(made, batches, settings.init_quantile)
    trained = train_model(made, batches, batches, settings)
    assert trained["theta"].shape == (2, 4) and (trained["theta"] > start).all()
    assert [entry["phase"] for entry in trained["log"]] == ["soft"] * 4 + ["hard"] * 2


def test_the_vision_family_runs_end_to_end_on_the_command_line(tmp_path):
    """train-vit on a tiny IDX set learns it; train (the family read from the model's config) learns
    thresholds on the trained ViT (with distillation) and exports it, and train-model its dense control
    beside; trace-model traces it with those thresholds and the control; the trace runs exactly on the
    emitted Verilog (Icarus, random stalls); trace of the export gives the same trace and evaluate scores
    every test image."""
    data = str(write_idx_set(tmp_path / "set"))
    vit = tmp_path / "vit"
    assert main(["train-vit", "--data", data, "--layers", "1", "--heads", "2", "--hidden", "8", "--mlp", "16",
                 "--patch", "14", "--epochs", "30", "--batch-size", "16", "--lr", "1e-2",
                 "--out", str(vit)]) == 0
    trained = json.loads((vit / "training.json").read_text())
    assert trained["test_accuracy"]["value"] > 70 and trained["train_images"] == 96
    common = ["--model", str(vit), "--data", data, "--soft-steps", "3", "--hard-steps", "2",
              "--calibration-sentences", "16", "--batch-size", "16"]
    assert main(["train", *common, "--lambda", "1", "--distill", "0.5", "--out", str(tmp_path / "pruned")]) == 0
    assert main(["train-model", *common, "--dense-control", "--out", str(tmp_path / "control")]) == 0
    assert json.loads((tmp_path / "pruned" / "training.json").read_text())["task"] == "image-classification"
    out = tmp_path / "traced"
    assert main(["trace-model", "--model", str(tmp_path / "pruned" / "model"), "--data", data,
                 "--preset", "tiny", "--sentences", "4", "--evaluate", "48", "--calibration-sentences", "16",
                 "--thresholds", str(tmp_path / "pruned" / "thresholds.json"),
                 "--dense-control", str(tmp_path / "control" / "model"), "--out", str(out)]) == 0
    report = json.loads((out / "model-trace.json").read_text())
    figures = report["image_classification"]
    assert report["family"] == "vision" and figures["images"] == 48
    assert "accuracy_change" in figures["dense_control"]
    trace = trace_file.load(out / "trace.npz")
    assert trace.count == 4 * 1 * 2 and trace.length == 5
    assert main(["sim", "--trace", str(out / "trace.npz"), "--sim", "icarus", "--stalls",
                 "--out", str(tmp_path / "sim.json")]) == 0
    assert json.loads((tmp_path / "sim.json").read_text())["mismatches"] == 0
    exported = str(tmp_path / "pruned" / "export.npz")
    assert main(["trace", exported, "--sentences", "4", "--out", str(tmp_path / "again.npz")]) == 0
    again = trace_file.load(tmp_path / "again.npz")
    for name in ("q", "k", "v", "valid_len", "threshold", "scale"):
        assert np.array_equal(getattr(again, name), getattr(trace, name)), name
    assert main(["evaluate", exported, "--out", str(tmp_path / "evaluation.json")]) == 0
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["family"] == "vision"
    assert evaluation["image_classification"]["images"] == trained["test_images"]
    assert main(["golden", "--trace", str(out / "trace.npz"), "--out", str(out / "golden.json")]) == 0
    assert main(["model-table", str(out), "--out", str(tmp_path / "table.md")]) == 0
    golden_report = json.loads((out / "golden.json").read_text())
    (row,) = json.loads((tmp_path / "table.json").read_text())
    assert row["thresholds"] == "learned, λ = 1, distill 0.5" and row["family"].startswith("vision")
    assert row["scores pruned"] == f"{100 * golden_report['pruned_fraction']:.1f} %"
    assert row["front end"] == f"{golden_report['speedup']:.2f}×"
    engine = figures["accuracy"]["engine"]
    assert row["accuracy"].startswith(f"{engine['value']:.2f} % ")
    assert (tmp_path / "table.md").read_text().count("\n") == 3


def test_vision_commands_refuse_what_does_not_fit(tmp_path, capsys):
    data = str(write_idx_set(tmp_path / "set"))
    vit = tmp_path / "vit"
    assert main(["train-vit", "--data", data, "--layers", "1", "--heads", "2", "--hidden", "8", "--mlp", "16",
                 "--patch", "14", "--epochs", "0.2", "--batch-size", "16", "--out", str(vit)]) == 0
    rgb = tmp_path / "rgb"
    config = transformers.ViTConfig.from_pretrained(vit)
    config.num_channels = 3
    transformers.ViTForImageClassification(config).save_pretrained(rgb)
    capsys.readouterr()
    cases = [
        (["train-vit", "--data", data, "--patch", "5", "--out", str(tmp_path / "a")], "--patch 5 must divide"),
        (["train-model", "--model", str(vit), "--data", data, "--task", "language-modelling",
          "--out", str(tmp_path / "b")], "--task language-modelling does not fit"),
        (["trace-model", "--model", str(vit), "--data", data, "--preset", "minilm", "--out", str(tmp_path / "c")],
         "has head dim 4, the engine config 32"),
        (["trace-model", "--model", str(vit), "--data", data, "--preset", "tiny", "--sentences", "4",
          "--evaluate", "2", "--out", str(tmp_path / "d")], "--evaluate 2 is under --sentences 4"),
        (["trace-model", "--model", str(vit), "--data", data, "--preset", "tiny", "--dense-control", "smollm2",
          "--out", str(tmp_path / "e")], "is a decoder, the model a vision"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
        assert not any((tmp_path / name).exists() for name in "abcde")


def test_distillation_keeps_the_model_near_the_one_it_started_from():
    """With the same steps, a distillation weight leaves the hard-pruned classifier's outputs closer to
    the untrained model's own outputs than training without it does; the log records the divergence."""
    from leopard.model.training.hf_trace import forward
    from leopard.model.training.hf_train import distillation_loss

    batches = image_batches(16, 5)
    teacher = tiny_vit()
    with torch.no_grad():
        taught = [forward(teacher, batch) for batch in batches]
    divergence = {}
    for weight in (0.0, 20.0):
        made = tiny_vit()
        settings = ModelTrainSettings(lam=1.0, soft_steps=3, hard_steps=5, lr=3e-3, distill=weight)
        trained = train_model(made, batches, batches, settings)
        with torch.no_grad():
            divergence[weight] = sum(float(distillation_loss(made, forward(made, batch), reference, batch))
                                     for batch, reference in zip(batches, taught, strict=True))
        assert ("distillation" in trained["log"][0]) == (weight > 0)
    assert divergence[20.0] < 0.5 * divergence[0.0]
