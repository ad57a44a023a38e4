"""Commands of the training side: ``train`` (MiniLM or any BERT; other encoders, decoders and image
classifiers through ``model_commands.py``), ``sweep``, ``requantize``, ``evaluate``, ``trace``. They
import torch only when run, so the other commands start fast."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_json
from leopard.model.reference import report
from leopard.model.training.runtime import torch_ready
from leopard.scripts.common import (
    SEED,
    add_cluster_options,
    add_config_options,
    config_from_args,
    integer,
    number,
    pool_from_args,
    progress,
)
from leopard.scripts.data_options import add_data_options, add_quant_options, data_spec
from leopard.scripts.paths import Output, declare

if TYPE_CHECKING:
    from leopard.model.training.data import Dataset, Examples
    from leopard.model.training.export import Export
    from leopard.model.training.hf_models import ModelSource
    from leopard.model.training.train import TrainSettings

DEFAULTS = {"lam": 0.2, "epochs": 0.5, "seed": 0}
BERT_DEFAULTS = {"soft_steps": 200, "hard_steps": 100, "train_threads": 1, "batch_size": 16, "lr": 5e-5,
                 "init_quantile": 0.3, "calibration_sentences": 256}
"""What ``train`` and ``sweep`` take when an option is not given and the model is a BERT checkpoint (the
project's own BERT, ``model/training/train.py``)."""
HOOKED_DEFAULTS = {"soft_steps": 100, "hard_steps": 50, "train_threads": 2, "calibration_sentences": 64,
                   "init_quantile": 0.5}
"""The same for a decoder or an image classifier, trained through the hooked attention (``train-model``'s
defaults; the batch size and learning rate are the family's). An encoder other than BERT takes the BERT
ones, through the hooked attention too."""
BERT_ONLY = ("epochs", "plane_cost", "plane_proxy", "center_keys")
"""Options of the BERT path alone: refused when changed from their defaults for a hooked model (but
``epochs``, an encoder's fine-tune there too)."""
TASKS = ("classification", "language-modelling", "image-classification")


def _add_train_options(parser: argparse.ArgumentParser, *, any_model: bool = False) -> None:
    """The options of ``sweep`` (a BERT checkpoint) or, with ``any_model``, of ``train`` (any family)."""
    add_config_options(parser, default_help="minilm; a hooked model: the preset with its head dim"
                       if any_model else None)
    add_data_options(parser, override=False, images=any_model)
    add = parser.add_argument
    add("--epochs", type=number(0), default=DEFAULTS["epochs"],
        help="encoders: fine-tuning length in passes over the training sentences (default: 0.5)")
    add("--soft-steps", type=integer(2),
        help="steps with soft thresholds (default: 200 encoders; 100 decoders and vision)")
    add("--hard-steps", type=integer(0),
        help="steps with hard thresholds (default: 100 encoders; 50 decoders and vision)")
    add("--theta-lr", type=number(0), default=0.02, help="thresholds' learning rate (default: 0.02)")
    add("--batch-size", type=integer(1), metavar="N",
        help="training examples per step (default: 16 sentences for an encoder, 8 for a decoder, 32 "
             "images)")
    add("--lr", type=number(above=0),
        help="the weights' learning rate (default: 5e-5 encoder, 1e-5 decoder, 1e-4 vision)")
    add("--init-quantile", type=number(0, 1), metavar="Q",
        help="thresholds start at this quantile of each head's scores (default: 0.3 encoders, 0.5 "
             "decoders and vision)")
    add("--calibration-sentences", type=integer(1), metavar="N",
        help="training sentences (images) the thresholds and scales start from (default: 256 encoders, "
             "64 decoders and vision)")
    add("--seed", type=SEED, default=DEFAULTS["seed"], help="training seed (default: 0)")
    if any_model:
        add("--model", metavar="DIR|FILE.gguf|NAME",
            help="a BERT checkpoint folder (default: all-MiniLM-L6-v2), or another transformers encoder "
                 "(RoBERTa, ALBERT, …), a decoder or an image classifier (a checkpoint folder, a GGUF "
                 "file, smollm2), trained through the hooked attention; the family is read from its "
                 "config")
        add("--task", choices=TASKS,
            help="the loss: the labels' cross-entropy (classification, encoders), next-token (decoder) "
                 "or image classification (default: the model's)")
    else:
        add("--model", metavar="DIR",
            help="a Hugging Face BERT checkpoint folder (default: all-MiniLM-L6-v2)")
    add("--train-threads", dest="train_threads", type=integer(1), metavar="N",
        help="torch threads; the trained weights depend on it (default: 1 encoders, 2 decoders and "
             "vision)")
    add("--plane-cost", type=number(0), default=0.0, metavar="W",
        help="BERT: weight of the bit-plane proxy in the loss, cost-aware training (default: 0, off)")
    add("--plane-proxy", default="log", choices=("log", "sigmoid"),
        help="BERT: the differentiable planes proxy of --plane-cost (default: log)")
    add("--distill", type=number(0), default=0.0, metavar="W",
        help="weight of the distillation (KL of the output distributions) from the model before "
             "thresholds (an encoder: the fine-tuned one) while thresholds are learned and in the hard "
             "fine-tune (default: 0, off)")
    add("--center-keys", action="store_true",
        help="BERT: take each head's mean key out of the key bias before learning the thresholds "
             "(the dense model is unchanged; key centering without hardware)")
    add_quant_options(parser)
    add("--no-progress", action="store_true", help="no progress bar")



def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="learn per-head thresholds: MiniLM or any BERT (fine-tuned, exported), another "
                      "encoder, a decoder or a vision classifier")
    _add_train_options(parser, any_model=True)
    parser.add_argument("--lambda", dest="lam", type=number(0), default=DEFAULTS["lam"],
                        help="weight of the mean keep-mask in the loss (default: 0.2)")
    parser.add_argument("--dense-control", action="store_true",
                        help="train on the same schedule without thresholds (the unpruned control)")
    parser.add_argument("--out", default="runs/train", metavar="RUN_DIR",
                        help="run folder: checkpoints, export.npz, reports; resumed when present")
    declare(parser, inputs=("config", "data", "model"), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_train, not_hooked={name: parser.get_default(name) for name in BERT_ONLY})

    parser = commands.add_parser("sweep", help="train for several λ, write the trade-off table and plots")
    _add_train_options(parser)
    parser.add_argument("--lambdas", default="0.05,0.1,0.2,0.4,0.8", metavar="L1,L2,…",
                        help="comma-separated λ values (default: 0.05,0.1,0.2,0.4,0.8)")
    parser.add_argument("--out", default="runs/sweep", metavar="DIR")
    add_cluster_options(parser)
    declare(parser, inputs=("config", "data", "model"), outputs=(Output("out", folder=True),))
    parser.set_defaults(run=run_sweep)

    parser = commands.add_parser("requantize", help="quantize an export again (other clipping or key scales)")
    parser.add_argument("export", metavar="EXPORT", help="export.npz written by leopard train")
    add_quant_options(parser)
    add_data_options(parser, override=True)
    parser.add_argument("--out", required=True, metavar="NEW.npz", help="the requantized export")
    parser.add_argument("--threads", type=integer(1), help="torch threads (default: every core)")
    declare(parser, inputs=("export", "data"), outputs=(Output("out"),))
    parser.set_defaults(run=run_requantize)

    parser = commands.add_parser("evaluate", help="accuracy and pruning of an exported model")
    parser.add_argument("export", metavar="EXPORT",
                        help="export.npz written by leopard train, or by leopard trace-model --export")
    add_config_options(parser, default=None)
    add_data_options(parser, override=True)
    parser.add_argument("--dense-control", metavar="EXPORT",
                        help="the dense control's export (leopard train --dense-control): adds the paired "
                             "accuracy difference against it (for any transformers model: also its "
                             "checkpoint folder)")
    parser.add_argument("--out", metavar="REPORT.json", help="also write the report here")
    parser.add_argument("--threads", type=integer(1), help="torch threads (default: every core)")
    declare(parser, inputs=("export", "config", "data", "dense_control"), outputs=(Output("out"),))
    parser.set_defaults(run=run_evaluate)

    parser = commands.add_parser("trace", help="attention trace of real held-out sentences")
    parser.add_argument("export", metavar="EXPORT",
                        help="export.npz written by leopard train, or by leopard trace-model --export")
    add_config_options(parser, default=None)
    add_data_options(parser, override=True)
    parser.add_argument("--sentences", type=integer(1), required=True, metavar="N",
                        help="test sentences to trace")
    parser.add_argument("--seed", type=SEED, default=0, help="which sentences (default: 0)")
    parser.add_argument("--out", required=True, metavar="FILE.npz")
    parser.add_argument("--threads", type=integer(1), help="torch threads (default: every core)")
    declare(parser, inputs=("export", "config", "data"), outputs=(Output("out"),))
    parser.set_defaults(run=run_trace)


def _given_or(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` with the options ``args`` gives in their place."""
    return {name: default if getattr(args, name) is None else getattr(args, name)
            for name, default in defaults.items()}


def _settings(args: argparse.Namespace, lam: float) -> TrainSettings:
    from leopard.model.training.train import TrainSettings

    given = _given_or(args, BERT_DEFAULTS)
    return TrainSettings(lam=lam, epochs=args.epochs, soft_steps=given["soft_steps"],
                         hard_steps=given["hard_steps"], batch_size=given["batch_size"], lr=given["lr"],
                         init_percentile=round(100 * given["init_quantile"], 6),
                         calibration_sentences=given["calibration_sentences"],
                         theta_lr=args.theta_lr, seed=args.seed, threads=given["train_threads"],
                         prune=not getattr(args, "dense_control", False),
                         clip_percentile=args.clip_percentile, key_block=args.key_block,
                         clip_q_percentile=args.clip_q_percentile,
                         plane_cost=args.plane_cost, plane_proxy=args.plane_proxy,
                         distill=args.distill, center_keys=args.center_keys)


def _model_dir(args: argparse.Namespace) -> Path | None:
    """The BERT checkpoint folder ``--model`` names (a folder, ``minilm``, or a folder whose config has
    no ``model_type``, as the project's own BERT writes it); a one-line error for anything else."""
    if args.model is None:
        return None
    from leopard.model.training import hf_models

    if _own_bert(args.model):
        return Path(args.model)
    source = hf_models.find(args.model)
    if source.family != "encoder" or source.gguf or source.config.model_type != "bert":
        kind = "GGUF file" if source.gguf else (
            source.family if source.family != "encoder" else f"{source.config.model_type} encoder")
        raise LeopardError(f"--model {args.model} is a {kind}; leopard sweep trains BERT checkpoint folders "
                           f"(leopard train trains the others)")
    return source.folder


def _own_bert(model: str) -> bool:
    """Whether ``model`` is a checkpoint folder whose config has no ``model_type`` (the project's BERT)."""
    from leopard.hw.files import read_json

    config = Path(model) / "config.json"
    return config.is_file() and "model_type" not in read_json(config, "model config")


def _hooked_source(args: argparse.Namespace) -> ModelSource | None:
    """The model ``--model`` names when it trains through the hooked attention (a decoder, an image
    classifier, an encoder other than BERT, or a GGUF file), ``None`` for a BERT checkpoint (whose
    ``--task`` is checked here; a hooked model's is checked by ``train-model``)."""
    source = None
    if args.model is not None and not _own_bert(args.model):
        from leopard.model.training import hf_models

        found = hf_models.find(args.model)
        if found.gguf and found.family == "encoder":
            raise LeopardError(f"--model {args.model} is a GGUF encoder; leopard train takes a GGUF decoder, "
                               "or an encoder as a checkpoint folder")
        source = None if found.family == "encoder" and found.config.model_type == "bert" else found
    if source is None and args.task not in (None, "classification"):
        raise LeopardError(f"--task {args.task} does not fit {args.model or 'MiniLM'}, a BERT checkpoint: "
                           "its task is classification")
    return source


def run_train(args: argparse.Namespace) -> None:
    source = _hooked_source(args)
    if source is not None:
        _train_hooked(args, source)
        return
    torch_ready()
    from leopard.model.training.train import train

    summary = train(args.out, _settings(args, args.lam), data_spec(args), config_from_args(args),
                    model_dir=_model_dir(args), progress=not args.no_progress)
    print(report.table(_headline(summary)))
    print(f"wrote {Path(args.out) / 'export.npz'} and {Path(args.out) / 'evaluation.json'}")


def _train_hooked(args: argparse.Namespace, source: ModelSource) -> None:
    """``train`` on a decoder, an image classifier or an encoder other than BERT: ``train-model`` with
    these options (``hooked_options``)."""
    from leopard.scripts import model_commands

    hooked_options(args, source)
    model_commands.train_found_model(args, source, export=True)


def hooked_options(args: argparse.Namespace, source: ModelSource) -> None:
    """``train``'s ``args`` made ``train-model``'s for ``source``: the options of the BERT path (but an
    encoder's ``--epochs``) refused when given, the family's defaults filled in, and the engine config
    without ``--preset``/``--config`` the preset with the model's head dim."""
    from leopard.model.training.hf_models import NOUNS

    encoder = source.family == "encoder"
    for name, default in args.not_hooked.items():
        if getattr(args, name) != default and not (encoder and name == "epochs"):
            option = "--" + name.replace("_", "-")
            where = "encoders" if name == "epochs" else "BERT checkpoints"
            raise LeopardError(f"{option} applies to {where}; --model {args.model} is {NOUNS[source.family]} "
                               "trained through the hooked attention: drop it")
    for name, value in _given_or(args, BERT_DEFAULTS if encoder else HOOKED_DEFAULTS).items():
        setattr(args, name, value)
    if not encoder:
        args.epochs = None
    args.default_preset = None


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    evaluation = summary["evaluation"]
    return {
        "finetune_accuracy": summary.get("finetune_accuracy"),
        **{f"accuracy_{name}": value for name, value in evaluation["accuracy"].items()},
        "accuracy_loss": evaluation["accuracy_loss"],
        "pruned_fraction": evaluation["pruned_fraction"],
        "decision_flips": evaluation["decision_flips"],
        "empty_queries": evaluation["empty_queries"],
    }


def run_sweep(args: argparse.Namespace) -> None:
    torch_ready()
    from leopard.model.training import sweep

    try:
        lambdas = [float(value) for value in args.lambdas.split(",")]
    except ValueError:
        raise LeopardError(f"--lambdas must be comma-separated numbers, got {args.lambdas!r}") from None
    summary = sweep.run(Path(args.out), lambdas, _settings(args, lambdas[0]), data_spec(args),
                        config_from_args(args), model_dir=_model_dir(args), progress=not args.no_progress,
                        pool=pool_from_args(args), report=progress)
    print(summary["table"], end="")
    print(f"outputs in {args.out}/")


def _load_export(args: argparse.Namespace) -> Export:
    """The export, refused when ``--preset``/``--config`` names another engine config."""
    from leopard.model.training import export

    made = export.load(args.export)
    given = config_from_args(args)
    if given is not None and given != made.config:
        raise LeopardError(f"export {args.export} was made for another engine config; drop --preset/--config")
    return made


def _dataset(args: argparse.Namespace, made: Export) -> Dataset:
    """The export's data (``--data`` if it moved), refused when its contents differ."""
    from leopard.model.training import data

    spec = data.with_data(made.data, args.data)
    dataset = data.load_dataset(spec)
    if dataset.sha256 != made.data_sha256:
        raise LeopardError(
            f"data {spec.data} differs from the file the export was trained on (sha256); pass the same file"
        )
    return dataset


def _test_set(args: argparse.Namespace, made: Export) -> Examples:
    return _dataset(args, made).test


def run_requantize(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    from leopard.model.training import export
    from leopard.model.training.quantize import QuantSettings
    from leopard.model.training.train import requantize

    made = export.load(args.export)
    quant = QuantSettings(clip_percentile=args.clip_percentile, key_block=args.key_block,
                          clip_q_percentile=args.clip_q_percentile)
    quant.check(made.bert.head_dim)
    again = requantize(made, _dataset(args, made), quant)
    export.save(again, args.out)
    print(f"wrote {args.out}: keys clipped at percentile {quant.clip_percentile:g}, queries at "
          f"{quant.clip_q_percentile:g}, key block {quant.key_block}")


def _holds_any_model(args: argparse.Namespace) -> bool:
    """Whether the ``EXPORT`` argument is a version 3 export (any ``transformers`` model), which
    ``model_commands`` evaluates and traces."""
    from leopard.model.training import export

    return export.version_of(args.export) == export.MODEL_VERSION


def run_evaluate(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    if _holds_any_model(args):
        from leopard.scripts import model_commands

        model_commands.evaluate_model_export(args)
        return
    from leopard.model.training.evaluate import evaluate
    from leopard.model.training.export import load_dense_control

    made = _load_export(args)
    control = None if args.dense_control is None else load_dense_control(args.dense_control, made)
    figures = evaluate(made, _test_set(args, made), control)
    print(report.table({key: value for key, value in figures.items() if not key.endswith("_per_head")}))
    print(per_head_table(figures["pruned_per_head"]))
    if args.out:
        write_json(args.out, figures)
        print(f"wrote {args.out}")


def per_head_table(pruned: list[list[float]]) -> str:
    """Percent of scores pruned, one row per layer, one column per head."""
    heads = len(pruned[0])
    lines = [f"{'scores pruned (%)':<18}" + "".join(f"{'h' + str(head):>5}" for head in range(heads))]
    lines += [f"{'layer ' + str(layer):<18}" + "".join(f"{100 * value:5.0f}" for value in row)
              for layer, row in enumerate(pruned)]
    return "\n".join(lines)


def run_trace(args: argparse.Namespace) -> None:
    torch_ready(args.threads)
    if _holds_any_model(args):
        from leopard.scripts import model_commands

        model_commands.trace_model_export(args)
        return
    from leopard.model.reference import trace as trace_file
    from leopard.model.training import capture

    made = _load_export(args)
    examples = _test_set(args, made)
    chosen = capture.pick(examples, args.sentences, args.seed)
    source = (
        f"leopard trace: export sha256 {capture.file_digest(args.export)}, {args.sentences} test sentences "
        f"of {made.data.data} (seed {args.seed}), problems ordered (sentence, layer, head)"
    )
    captured = capture.capture(made, examples, chosen, source)
    trace_file.save(captured.trace, args.out)
    print(f"wrote {args.out}: {captured.trace.count} problems of {captured.trace.q.shape[1]} tokens")
