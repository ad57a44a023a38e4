"""Commands for any ``transformers`` model through the hooked attention: ``trace-model``, ``train-model``,
and ``train-vit`` (the small vision transformer the project trains itself). They import torch only when
run."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_json
from leopard.model.training.runtime import torch_ready
from leopard.scripts.common import SEED, add_config_options, config_from_args, integer, number, progress
from leopard.scripts.data_options import add_data_options, add_quant_options, data_spec
from leopard.scripts.paths import Output, declare

if TYPE_CHECKING:
    from leopard.model.training.hf_models import HFModel, ModelSource
    from leopard.model.training.hf_trace import Batch
    from leopard.model.training.hf_train import ModelTrainSettings

FAMILY_DEFAULTS = {"decoder": {"batch_size": 8, "lr": 1e-5}, "vision": {"batch_size": 32, "lr": 1e-4},
                   "encoder": {"batch_size": 16, "lr": 5e-5}}
"""``train-model``'s batch size and weights' learning rate when not given, per family (an encoder's as
the project's own BERT trains: ``leopard train``)."""
ENCODER_FINETUNE_EPOCHS = 0.5
"""An encoder's dense fine-tune before thresholds (its classifier head is new) when ``--epochs`` is not
given, in passes over the training batches, as ``leopard train`` fine-tunes the project's BERT."""
IMAGE_BATCH = 64
"""Images run through the model at once outside training."""
DATA_OPTIONS = ("data", "text_column", "label_column", "group_column", "split_seed", "test_fraction",
                "max_tokens")
"""The options that choose and split an export's data, recorded in it."""
CALIBRATING = ("prune", "calibration_sentences", "thresholds", "clip_percentile", "clip_q_percentile",
               "key_block", "preset", "config")
"""``trace-model``'s options that make the scales and thresholds, which an export given as ``--model``
already holds (as it holds the data options but ``--data``)."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "trace-model", help="attention trace of any transformers decoder, encoder or vision model")
    add_config_options(parser, default=None)
    add_data_options(parser, override=False, images=True)
    add = parser.add_argument
    add("--model", default="smollm2", metavar="DIR|FILE.gguf|FILE.npz|NAME",
        help="a transformers checkpoint folder, a GGUF file, a trace-model --export file (its scales and "
             "thresholds), or smollm2 / minilm (default: smollm2)")
    add("--prune", type=number(0, 1), default=0.8, metavar="F",
        help="share of each head's scores below its threshold on the calibration examples (default: 0.8)")
    add("--sentences", type=integer(1), default=8, metavar="N",
        help="test sentences (images for a vision model) traced (default: 8)")
    add("--evaluate", type=integer(1), metavar="N",
        help="test examples for the accuracy figures, the traced ones first (default: the traced ones)")
    add("--calibration-sentences", type=integer(1), default=64, metavar="N",
        help="training sentences (images) for the scales and thresholds (default: 64)")
    add("--seed", type=SEED, default=0, help="which examples (default: 0)")
    add_quant_options(parser)
    add("--thresholds", metavar="FILE.json",
        help="learned thresholds (leopard train-model's thresholds.json) instead of --prune quantiles")
    add("--dense-control", metavar="DIR",
        help="a model trained on the same schedule without thresholds: paired differences against it")
    add("--out", default="runs/model-trace", metavar="DIR",
        help="writes DIR/trace.npz and DIR/model-trace.json (default: runs/model-trace)")
    add("--export", dest="export_out", metavar="FILE.npz",
        help="also write the model with the engine config, scales and thresholds it was traced with, in one "
             "file that --model takes back (traced again without calibrating)")
    add("--threads", type=integer(1), help="torch threads (default: every core)")
    declare(parser, inputs=("config", "data", "model", "thresholds", "dense_control"),
            outputs=(Output("out", folder=True), Output("export_out", flag="--export")))
    parser.set_defaults(run=run_trace_model, export_defaults={
        name: parser.get_default(name) for name in (*CALIBRATING, *DATA_OPTIONS[1:])})

    parser = commands.add_parser(
        "train-model", help="learn per-head thresholds on a transformers decoder, encoder or vision "
                            "classifier")
    add_data_options(parser, override=False, images=True)
    add = parser.add_argument
    add("--model", default="smollm2", metavar="DIR|FILE.gguf|NAME",
        help="a transformers decoder, encoder (trained as a sentence classifier: a new head on it) or "
             "image classifier: checkpoint folder, GGUF file, or smollm2 / minilm (default: smollm2)")
    add("--task", choices=("language-modelling", "classification", "image-classification"),
        help="the loss: next-token for a decoder, the labels' cross-entropy for an encoder's sentences or "
             "an image classifier (default: the model's)")
    add("--lambda", dest="lam", type=number(0), default=0.2,
        help="weight of the mean keep-mask (default: 0.2)")
    add("--epochs", type=number(0), metavar="E",
        help="dense fine-tuning before thresholds, in passes over the training examples (default: 0.5 "
             "for an encoder, whose classifier head is new; 0 otherwise)")
    add("--soft-steps", type=integer(0), default=100, help="steps with soft thresholds (default: 100)")
    add("--hard-steps", type=integer(0), default=50, help="steps with hard thresholds (default: 50)")
    add("--batch-size", type=integer(1), metavar="N",
        help="training examples per step (default: 8 sentences for a decoder, 16 for an encoder, 32 "
             "images)")
    add("--lr", type=number(0),
        help="the weights' learning rate (default: 1e-5 decoder, 5e-5 encoder, 1e-4 vision)")
    add("--theta-lr", type=number(0), default=0.02, help="thresholds' learning rate (default: 0.02)")
    add("--init-quantile", type=number(0, 1), default=0.5,
        help="thresholds start at this quantile of each head's scores (default: 0.5)")
    add("--distill", type=number(0), default=0.0, metavar="W",
        help="weight of the divergence from the model before thresholds (as it came in; an encoder: "
             "after its dense fine-tune), distillation (default: 0, off)")
    add("--calibration-sentences", type=integer(1), default=64, metavar="N",
        help="training sentences (images) the thresholds start from (default: 64)")
    add("--seed", type=SEED, default=0, help="training seed (default: 0)")
    add("--dense-control", action="store_true",
        help="train on the same schedule without thresholds (the unpruned control)")
    add("--train-threads", type=integer(1), default=2, metavar="N",
        help="torch threads; the trained weights depend on it (default: 2)")
    add("--out", default="runs/train-model", metavar="DIR",
        help="writes DIR/model (the trained weights), DIR/thresholds.json, DIR/training.json")
    declare(parser, inputs=("data", "model"), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_train_model)

    parser = commands.add_parser(
        "train-vit", help="train the small vision transformer of the vision family from random weights")
    add = parser.add_argument
    add("--data", default="fashion-mnist", metavar="DIR",
        help="fashion-mnist (built in), a folder of IDX image files, or train/ and test/ folders of one "
             "folder of PNG images per class (default: fashion-mnist)")
    add("--layers", type=integer(1), default=4, help="transformer blocks (default: 4)")
    add("--heads", type=integer(1), default=3, help="attention heads (default: 3)")
    add("--hidden", type=integer(1), default=96, help="width; the head dim is hidden / heads (default: 96)")
    add("--mlp", type=integer(1), default=192, help="MLP width (default: 192)")
    add("--patch", type=integer(1), default=4, help="patch side in pixels (default: 4)")
    add("--epochs", type=number(above=0), default=5.0, help="passes over the training images (default: 5)")
    add("--batch-size", type=integer(1), default=64, help="images per step (default: 64)")
    add("--lr", type=number(above=0), default=2e-3, help="peak learning rate (default: 2e-3)")
    add("--seed", type=SEED, default=0, help="initialization and order seed (default: 0)")
    add("--train-threads", type=integer(1), default=2, metavar="N",
        help="torch threads; the trained weights depend on it (default: 2)")
    add("--out", default="runs/vit", metavar="DIR",
        help="writes the checkpoint (config.json, model.safetensors) and DIR/training.json")
    declare(parser, inputs=("data",), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_train_vit)

    parser = commands.add_parser(
        "model-table", help="one row per trace-model run: pruning, accuracy with intervals, speedups")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="folders holding model-trace.json and golden.json (or golden-summary.json)")
    parser.add_argument("--out", metavar="TABLE.md",
                        help="also write the table here and TABLE.json beside it")
    declare(parser, outputs=(Output("out", beside=(".json",)),))
    parser.set_defaults(run=run_model_table)


@dataclass(frozen=True)
class _Inputs:
    """The batches a command runs a model on, and what the report says of their data."""

    data: str
    sha256: str
    calibration: list[Batch]
    test: list[Batch]
    evaluated: list[Batch]
    training: list[Batch]


def _inputs(args: argparse.Namespace, made: HFModel, calibration: int, test: int = 0,
            evaluated: int | None = 0, batch_size: int | None = None) -> _Inputs:
    """Sentences or images for ``made``, each set in ``default_rng(seed)`` order: ``calibration`` of the
    training split (none for 0); the first ``test`` of the test split and the ``evaluated`` after them
    (``None``: the rest of the test split); with ``batch_size``, the whole training split in whole batches
    of that size."""
    import numpy as np

    from leopard.model.training import capture, data, hf_trace, images

    if made.family == "vision":
        channels = getattr(made.model.config, "num_channels", 1)
        if channels != 1:
            model = getattr(args, "model", None) or args.export
            raise LeopardError(f"--model {model} takes {channels} image channels; the images are read "
                               "as one grayscale channel, so give a model with num_channels 1")
        found = images.load(args.data or images.FASHION_MNIST)
        name, digest, train, held_out = found.name, found.sha256, found.train, found.test

        def pick(part: Any, count: int, option: str) -> np.ndarray:
            return images.pick(part, count, args.seed, option)

        def batched(part: Any, chosen: np.ndarray, size: int = IMAGE_BATCH) -> list[Batch]:
            return list(images.batches(part.take(chosen), size))
    else:
        spec = data_spec(args)
        dataset = data.load_dataset(spec)
        name, digest, train, held_out = spec.data, dataset.sha256, dataset.train, dataset.test

        def pick(part: Any, count: int, option: str) -> np.ndarray:
            what = "training sentences" if part is train else "test sentences"
            return capture.pick(part, count, args.seed, option=option, what=what)

        def batched(part: Any, chosen: np.ndarray, size: int = hf_trace.BATCH) -> list[Batch]:
            labels = part.labels[chosen] if made.task == "classification" else None
            return list(hf_trace.batches(made, [part.texts[i] for i in chosen], args.max_tokens, size=size,
                                         labels=labels))
    calibrating = batched(train, pick(train, calibration, "--calibration-sentences")) if calibration else []
    order = np.zeros(0, int)
    if evaluated is None:
        order = np.random.default_rng(args.seed).permutation(len(held_out))
    elif test:
        order = pick(held_out, test + evaluated, "--evaluate" if evaluated else "--sentences")
    training: list[Batch] = []
    if batch_size is not None:
        every = np.random.default_rng(args.seed).permutation(len(train))
        training = batched(train, every[:len(every) - len(every) % batch_size], batch_size)
    return _Inputs(name, digest, calibrating, batched(held_out, order[:test]),
                   batched(held_out, order[test:]), training)


def _engine_config(args: argparse.Namespace, source: ModelSource) -> Any:
    """``--preset``/``--config``, or the first preset with the model's head dim."""
    from leopard.hw.config import PRESETS

    cfg = config_from_args(args) or next(
        (config for config in PRESETS.values() if config.head_dim == source.head_dim), None)
    if cfg is None:
        raise LeopardError(f"no preset has head dim {source.head_dim}; pass a --config with it")
    return cfg


def run_trace_model(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    from leopard.model.reference import trace as trace_file
    from leopard.model.training import hf_export, hf_figures, hf_trace
    from leopard.model.training.hf_models import NOUNS

    _check_export_path(args)
    source_model = hf_export.find(args.model)
    exported = source_model.export
    if exported is not None:
        _check_export_options(args)
        args = _with_recorded_data(args, source_model, args.model)
    cfg = _engine_config(args, source_model) if exported is None else exported.config
    hf_trace.check_config(source_model, cfg, args.max_tokens)
    evaluate = args.evaluate or args.sentences
    if evaluate < args.sentences:
        raise LeopardError(f"--evaluate {evaluate} is under --sentences {args.sentences}: the traced "
                           "examples are evaluated too")
    quant = _quant_settings(args)
    if exported is None:
        theta = None if args.thresholds is None else _learned_thresholds(args.thresholds)
        made_by = {"model": args.model, "quantization": asdict(quant), "data": _data_settings(args),
                   "calibration_sentences": args.calibration_sentences,
                   "thresholds": args.thresholds or f"the {args.prune:g} quantile of each head's scores"}
    else:
        theta, made_by = exported.threshold, exported.made_by
    control_source = None if args.dense_control is None else hf_export.find(args.dense_control)
    if control_source is not None and control_source.family != source_model.family:
        raise LeopardError(f"--dense-control {args.dense_control} is {NOUNS[control_source.family]}, the "
                           f"model {NOUNS[source_model.family]}: the control must be the same kind of model")
    bare = [found for found in (source_model, control_source)
            if found is not None and found.family == "encoder" and not found.is_classifier()]
    if control_source is not None and bare:
        raise LeopardError("--dense-control compares task figures: give a decoder, a text classifier "
                           "(leopard train-model's model folder) or an image classifier")
    _check_classes(args, source_model, control_source)
    progress(f"loading {args.model} ({source_model.family}, {source_model.layers} layers)")
    made = source_model.load()
    control = None if control_source is None else control_source.load()
    calibration = 0 if exported is not None else args.calibration_sentences
    inputs = _inputs(args, made, calibration, args.sentences, evaluate - args.sentences)
    unit = "images" if made.family == "vision" else "sentences"
    kind = (f"quantile {args.prune:g} thresholds" if theta is None
            else "learned thresholds" if exported is None else "the export's scales and thresholds")
    source = (f"leopard trace-model: {args.model}, {args.sentences} test {unit} of {inputs.data} "
              f"(seed {args.seed}), {kind}, problems ordered ({unit[:-1]}, layer, head)")
    traced = hf_trace.model_trace(made, cfg, inputs.calibration, inputs.test, args.prune, quant, args.seed,
                                  source, progress, theta, control, inputs.evaluated,
                                  None if exported is None else exported.quantization())
    out = Path(args.out)
    figures = {
        **hf_trace.describe(made), "config": cfg.to_dict(), "data": inputs.data, "seed": args.seed,
        "calibration_sentences": made_by.get("calibration_sentences"), "sentences": args.sentences,
        "evaluated": evaluate, "quantization": made_by.get("quantization"),
        "prune_target": None if theta is not None else args.prune, "thresholds": args.thresholds,
        "export": None if exported is None else args.model,
        "dense_control": args.dense_control, "scores_pruned": round(traced.pruned, 6),
        "queries_all_pruned": round(traced.all_pruned, 6), "threshold_int": traced.threshold.tolist(),
    }
    if traced.figures is not None:
        figures[hf_figures.REPORT_KEY[made.family]] = traced.figures
    out.mkdir(parents=True, exist_ok=True)
    trace_file.save(traced.trace, out / "trace.npz")
    write_json(out / "model-trace.json", figures)
    if args.export_out:
        hf_export.save(hf_export.from_trace(made, cfg, traced.quant, traced.threshold, theta,
                                            {**made_by, "data_sha256": inputs.sha256}), args.export_out)
        print(f"wrote {args.export_out} (the model, its engine config, scales and thresholds)")
    print(f"{made.name}: {made.family}, {made.layers} layers, {made.heads} heads ({made.kv_heads} key/value "
          f"heads), head dim {made.head_dim}; {100 * traced.pruned:.1f} % of the traced scores pruned, "
          f"{100 * traced.all_pruned:.1f} % of the queries with every key pruned (output zero)")
    if traced.figures is not None:
        print(hf_figures.table(made.family, traced.figures))
    print(f"wrote {out / 'trace.npz'} ({traced.trace.count} problems of {traced.trace.length} tokens) and "
          f"{out / 'model-trace.json'}; next: leopard golden --trace {out / 'trace.npz'} --out REPORT.json")


def _data_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The data options, as an export records them (``DATA_OPTIONS``)."""
    return {name: getattr(args, name) for name in DATA_OPTIONS}


def _exported(args: argparse.Namespace) -> tuple[ModelSource, argparse.Namespace]:
    """``leopard evaluate``/``trace``'s version 3 export and the command's options with the data options
    the export records (``_with_recorded_data``)."""
    from leopard.model.training import hf_export

    source = hf_export.load(args.export)
    given = config_from_args(args)
    if given is not None and given != source.export.config:
        raise LeopardError(f"export {args.export} was made for another engine config; drop --preset/--config")
    return source, _with_recorded_data(args, source, args.export)


def _with_recorded_data(args: argparse.Namespace, source: ModelSource, name: str) -> argparse.Namespace:
    """``args`` with the data options the export ``name`` records (its ``--data`` if given: the file
    moved), refused when the export records none or when the data's sha256 differs from the recorded."""
    recorded = source.export.made_by.get("data")
    if not isinstance(recorded, dict) or set(recorded) != set(DATA_OPTIONS):
        raise LeopardError(f"export {name} does not record its data; trace it with leopard trace-model "
                           "--model and the data options")
    options = argparse.Namespace(**{**vars(args), **recorded, "data": args.data or recorded["data"]})
    recorded_sha256 = source.export.made_by.get("data_sha256")
    if recorded_sha256 is not None and _data_sha256(options, source.family) != recorded_sha256:
        raise LeopardError(f"data {options.data} differs from the data export {name} was made on (sha256); "
                           "pass the same data with --data")
    return options


def _data_sha256(args: argparse.Namespace, family: str) -> str:
    """The digest of the data ``args`` names, as ``_inputs`` reads it for a model of ``family``."""
    from leopard.model.training import data, images

    if family == "vision":
        return images.load(args.data or images.FASHION_MNIST).sha256
    return data.load_dataset(data_spec(args)).sha256


def _load_exported(source: ModelSource) -> HFModel:
    progress(f"loading {source.name} ({source.family}, {source.layers} layers)")
    return source.load()


def evaluate_model_export(args: argparse.Namespace) -> None:
    """``leopard evaluate`` of a version 3 export: the task's figures over every test example of its data,
    through the engine with the export's scales and thresholds and with the model's own attention (and a
    ``--dense-control``'s), and the share of their visible scores pruned."""
    from leopard.model.training import hf_export, hf_figures, hf_trace
    from leopard.model.training.quantize import QuantSettings

    source, options = _exported(args)
    if source.family == "encoder" and not source.is_classifier():
        raise LeopardError(f"export {args.export} is a bare encoder, which has no task to evaluate; trace it "
                           "with leopard trace")
    if args.dense_control is not None and args.dense_control.endswith(".npz"):
        from leopard.model.training import export

        if export.version_of(args.dense_control) != export.MODEL_VERSION:
            raise LeopardError(f"--dense-control {args.dense_control} is an export of the project's BERT; "
                               "the control of a transformers model is its own export or checkpoint folder")
    found = None if args.dense_control is None else hf_export.find(args.dense_control)
    kinds = [(model.family, model.is_classifier()) for model in (source, found) if model is not None]
    if len(set(kinds)) > 1:
        raise LeopardError(f"--dense-control {args.dense_control} is another kind of model; give the dense "
                           "control of the same training")
    _check_classes(options, source, found)
    made = _load_exported(source)
    control = None if found is None else found.load()
    options.seed = 0
    inputs = _inputs(options, made, 0, evaluated=None)
    exported = source.export
    run = hf_trace.model_trace(made, exported.config, [], [], 0.0, QuantSettings(), 0, "", progress,
                               exported.threshold, control, inputs.evaluated, exported.quantization())
    report = {**hf_trace.describe(made), "export": args.export, "data": inputs.data,
              "dense_control": args.dense_control, "scores_pruned": round(run.pruned_run, 6),
              hf_figures.REPORT_KEY[made.family]: run.figures}
    print(f"{100 * run.pruned_run:.1f} % of the visible scores pruned")
    print(hf_figures.table(made.family, run.figures))
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}")


def trace_model_export(args: argparse.Namespace) -> None:
    """``leopard trace`` of a version 3 export: ``--sentences`` test examples of its data through the
    engine with the export's scales and thresholds, as ``trace-model --model EXPORT`` traces them."""
    from leopard.model.reference import trace as trace_file
    from leopard.model.training import hf_trace
    from leopard.model.training.quantize import QuantSettings

    source, options = _exported(args)
    made = _load_exported(source)
    inputs = _inputs(options, made, 0, args.sentences)
    exported = source.export
    unit = "images" if made.family == "vision" else "sentences"
    origin = (f"leopard trace: {args.export}, {args.sentences} test {unit} of {inputs.data} (seed "
              f"{args.seed}), the export's scales and thresholds, problems ordered ({unit[:-1]}, layer, "
              "head)")
    run = hf_trace.model_trace(made, exported.config, [], inputs.test, 0.0, QuantSettings(), args.seed,
                               origin, progress, exported.threshold, None, (), exported.quantization())
    trace_file.save(run.trace, args.out)
    print(f"wrote {args.out}: {run.trace.count} problems of {run.trace.length} tokens, "
          f"{100 * run.pruned:.1f} % of the visible scores pruned")


def _quant_settings(args: argparse.Namespace) -> Any:
    """The quantization options as ``quantize.QuantSettings``."""
    from leopard.model.training.quantize import QuantSettings

    return QuantSettings(clip_percentile=args.clip_percentile, key_block=args.key_block,
                         clip_q_percentile=args.clip_q_percentile)


def _check_export_path(args: argparse.Namespace) -> None:
    """Refuse an ``--export`` path that ``--model`` would not read back, or that ``--out`` also writes."""
    if args.export_out is None:
        return
    path = Path(args.export_out)
    if path.suffix != ".npz":
        raise LeopardError(f"--export {path}: name it FILE.npz, as --model takes an export")
    if path.resolve() in {(Path(args.out) / name).resolve() for name in ("trace.npz", "model-trace.json")}:
        raise LeopardError(f"--export {path} is a file that --out {args.out} writes; write it elsewhere")


def _check_export_options(args: argparse.Namespace) -> None:
    """Refuse the options that make scales and thresholds when ``--model`` is an export, which holds them,
    and the data options but ``--data``, which it records."""
    for name, default in args.export_defaults.items():
        if getattr(args, name) != default:
            option = "--" + name.replace("_", "-")
            held = ("its data options (--data: where the data file moved)" if name in DATA_OPTIONS
                    else "scales and thresholds")
            raise LeopardError(f"{option}: the export {args.model} holds {held}; drop it, or give the "
                               "checkpoint to trace it anew")


def _learned_thresholds(path: str) -> Any:
    """``θ`` ``[layers, heads]`` from a ``thresholds.json`` of ``leopard train-model``."""
    import numpy as np

    from leopard.hw.files import read_json

    values = read_json(path, "thresholds").get("theta")
    try:
        theta = np.array(values, np.float64)
    except (TypeError, ValueError):
        theta = np.empty(0)
    if theta.ndim != 2 or not np.isfinite(theta).all():
        raise LeopardError(f"{path}: 'theta' must be a [layers][heads] table of numbers")
    return theta


def run_train_model(args: argparse.Namespace) -> None:
    from leopard.model.training import hf_models

    if args.model.endswith(".npz"):
        raise LeopardError(f"--model {args.model}: an export is traced and evaluated, not trained; train "
                           "from the checkpoint folder it came from")
    train_found_model(args, hf_models.find(args.model))


def train_found_model(args: argparse.Namespace, source_model: ModelSource, export: bool = False) -> None:
    """``train-model`` on ``source_model``, the model ``args.model`` names (its config already read).
    With ``export`` (``leopard train``), also ``DIR/export.npz``: the trained model with the engine config
    (``--preset``/``--config`` or the model's head dim's), scales calibrated with the quantization
    options on the calibration examples, and its thresholds."""
    import time

    import numpy as np

    torch_ready(args.train_threads)
    import torch

    from leopard.model.training import hf_export, hf_trace, hf_train
    from leopard.model.training.hf_models import NOUNS, TASKS

    task = TASKS[source_model.family]
    if args.task is not None and args.task != task:
        raise LeopardError(f"--task {args.task} does not fit {args.model}, {NOUNS[source_model.family]}: its "
                           f"task is {task}")
    settings, epochs = train_model_settings(args, source_model.family)
    if export:
        cfg = _engine_config(args, source_model)
        hf_trace.check_config(source_model, cfg, args.max_tokens)
        quant = _quant_settings(args)
        quant.check(source_model.head_dim)
    classes = _classes(args) if source_model.family == "encoder" else None
    if classes is not None:
        source_model.check_classes(classes)
    which = "its" if source_model.is_classifier() else "a new"
    head = "" if classes is None else f" with {which} classifier head of {classes} classes"
    progress(f"loading {args.model}{head}")
    torch.manual_seed(args.seed)
    made = source_model.load(classes)
    inputs = _inputs(args, made, args.calibration_sentences, batch_size=settings.batch_size)
    settings = replace(settings, finetune_steps=math.ceil(epochs * len(inputs.training)))
    began = time.monotonic()
    trained = hf_train.train_model(made, inputs.training, inputs.calibration, settings, progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made.model.save_pretrained(out / "model")
    if made.tokenizer is not None:
        made.tokenizer.save_pretrained(out / "model")
    theta = None if trained["theta"] is None else np.round(trained["theta"], 6)
    write_json(out / "thresholds.json", {
        "model": args.model, "layers": made.layers, "heads": made.heads,
        "theta": None if theta is None else theta.tolist(),
    })
    write_json(out / "training.json", {"model": args.model, "task": task, "data": inputs.data,
                                       "settings": trained["settings"], "log": trained["log"]})
    print(f"trained in {time.monotonic() - began:.0f} s; wrote {out / 'model'}, {out / 'thresholds.json'}, "
          f"{out / 'training.json'}")
    if export:
        progress(f"calibrating the export's scales on {args.calibration_sentences} training examples")
        made_by = {"model": args.model, "calibration_sentences": args.calibration_sentences,
                   "quantization": asdict(quant), "data": _data_settings(args),
                   "thresholds": "learned" if theta is not None else "none: a dense control",
                   "data_sha256": inputs.sha256}
        hf_export.save(hf_export.calibrated(made, cfg, inputs.calibration, quant, theta, made_by),
                       out / "export.npz")
        print(f"wrote {out / 'export.npz'}; next: leopard evaluate {out / 'export.npz'}")


def train_model_settings(args: argparse.Namespace, family: str) -> tuple[ModelTrainSettings, float]:
    """``train-model``'s settings for a model of ``family`` (its batch size and learning rate unless
    given; checked) and the passes of its dense fine-tune (an encoder's ``ENCODER_FINETUNE_EPOCHS``
    unless given, else 0); ``finetune_steps`` is set once the data is loaded."""
    from leopard.model.training.hf_train import ModelTrainSettings

    defaults = FAMILY_DEFAULTS[family]
    epochs = (ENCODER_FINETUNE_EPOCHS if family == "encoder" else 0.0) if args.epochs is None else args.epochs
    settings = ModelTrainSettings(
        lam=args.lam, soft_steps=args.soft_steps, hard_steps=args.hard_steps,
        batch_size=args.batch_size or defaults["batch_size"],
        lr=defaults["lr"] if args.lr is None else args.lr, theta_lr=args.theta_lr,
        init_quantile=args.init_quantile, distill=args.distill, seed=args.seed, prune=not args.dense_control,
    )
    settings.check()
    return settings, epochs


def _check_classes(args: argparse.Namespace, source: ModelSource, control: ModelSource | None) -> None:
    """A one-line error when the model, a sentence classifier, or its control classifies another number of
    classes than ``--data`` has."""
    if source.is_classifier():
        classes = _classes(args)
        for found in (source, control):
            if found is not None:
                found.check_classes(classes)


def _classes(args: argparse.Namespace) -> int:
    """The number of labels of the sentences ``--data`` names (an encoder's classifier head)."""
    from leopard.model.training import data

    return len(data.load_dataset(data_spec(args)).label_names)


def run_train_vit(args: argparse.Namespace) -> None:
    import time

    torch_ready(args.train_threads)
    from leopard.model.reference import confidence
    from leopard.model.training import images, vit

    settings = vit.VitSettings(layers=args.layers, heads=args.heads, hidden=args.hidden, mlp=args.mlp,
                               patch=args.patch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed)
    found = images.load(args.data)
    settings.check(found.train.pixels.shape[1])
    began = time.monotonic()
    model, log = vit.train(found, settings, progress)
    right = vit.accuracy_counts(model, found.test)
    accuracy = confidence.accuracy(right, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    write_json(out / "training.json", vit.summary(settings, found, log, accuracy))
    low, high = accuracy["ci95"]
    print(f"trained in {time.monotonic() - began:.0f} s: test accuracy {accuracy['value']:.2f} % "
          f"[{low:.2f}, {high:.2f}] on {len(found.test)} images; head dim {args.hidden // args.heads}")
    print(f"wrote {out}; next: leopard trace-model --model {out} --out DIR")


def run_model_table(args: argparse.Namespace) -> None:
    from leopard.hw.files import write_atomic
    from leopard.model.training import model_table

    rows = []
    written = [] if args.out is None else [Path(args.out), Path(args.out).with_suffix(".json")]
    outputs = {path.resolve() for path in written}
    for run in args.runs:
        folder = Path(run)
        if not (folder / "model-trace.json").is_file():
            raise LeopardError(f"{run}: no model-trace.json; give folders that leopard trace-model wrote")
        read = [folder / name for name in ("model-trace.json", "training.json", *model_table.GOLDEN_FILES)]
        if any(path.resolve() in outputs for path in read):
            raise LeopardError(f"--out {args.out} would replace a file of the run {run}; write the table "
                               "elsewhere")
        rows.append(model_table.row(folder))
    table = model_table.markdown(rows)
    print(table, end="")
    if args.out:
        write_atomic(args.out, table)
        write_json(Path(args.out).with_suffix(".json"), rows)
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
