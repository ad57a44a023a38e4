"""The options that say which data a training or tracing command reads and how it quantizes, shared by
the commands of ``train_commands.py`` and ``model_commands.py``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from leopard.model.reference import levers
from leopard.scripts.common import SEED, integer, number

if TYPE_CHECKING:
    from leopard.model.training.data import DataSpec

PERCENTILE = number(above=0, maximum=100)


def add_data_options(parser: argparse.ArgumentParser, *, override: bool, images: bool = False) -> None:
    """``--data`` and how sentences are split and tokenized; ``override``: only the moved file of an
    export; ``images``: also image folders, the built-in set chosen by the model's family."""
    if override:
        parser.add_argument("--data", metavar="FILE",
                            help="the export's data file, if it moved (default: where it was trained)")
        return
    add = parser.add_argument
    if images:
        add("--data", metavar="FILE|DIR",
            help="sentences: rotten-tomatoes (built in, the default for text models) or a CSV/TSV file with "
                 "a text and a label column; images: fashion-mnist (built in, the default for vision "
                 "models), a folder of IDX files, or train/ and test/ folders of one folder of PNG "
                 "images per class")
    else:
        add("--data", default="rotten-tomatoes", metavar="FILE",
            help="rotten-tomatoes (built in) or a CSV/TSV file with a text and a label column")
    add("--text-column", default="text", metavar="NAME", help="for --data FILE (default: text)")
    add("--label-column", default="label", metavar="NAME", help="for --data FILE (default: label)")
    add("--group-column", metavar="NAME",
        help="for --data FILE: rows of one group stay on one side of the split (default: split by row)")
    add("--split-seed", type=SEED, default=0, help="seed of the train/test split (default: 0)")
    add("--test-fraction", type=number(above=0), default=0.2, help="share of groups held out (default: 0.2)")
    add("--max-tokens", type=integer(3), default=64,
        help="tokens per sentence with [CLS] and [SEP] (default: 64)")


def add_quant_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--clip-percentile", type=PERCENTILE, default=levers.DEFAULT_CLIP_PERCENTILE, metavar="P",
        help="keys saturate at this percentile of |k| per head: outlier-aware quantization "
             "(default: %(default)g; 100: the largest value)")
    add("--clip-q-percentile", type=PERCENTILE, default=100.0, metavar="P",
        help="queries saturate at this percentile of |q| per head (default: 100, the largest value)")
    add("--key-block", type=integer(0), default=levers.DEFAULT_KEY_BLOCK, metavar="G",
        help="key channels sharing one scale, folded into the query: finer key scaling "
             "(default: %(default)s, per channel; 0: one scale per head)")


def data_spec(args: argparse.Namespace) -> DataSpec:
    """The sentences ``--data`` names (Rotten Tomatoes when it is not given), split and tokenized."""
    from leopard.model.training import data

    if args.data in (None, data.ROTTEN_TOMATOES):
        spec = data.DataSpec()
    else:
        spec = data.user_spec(args.data, args.text_column, args.label_column, args.group_column)
    return replace(spec, seed=args.split_seed, test_fraction=args.test_fraction, max_tokens=args.max_tokens)
