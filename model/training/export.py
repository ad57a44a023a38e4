"""The exported model: one versioned ``.npz`` with the classifier's weights, the quantization scales,
the float and integer thresholds per (layer, head), the engine config and the data settings.
Specified in ``docs/formats.md`` (section "Exported model"); every field is validated on load.

Versions 1 and 2 hold the project's own BERT classifier (``leopard train``), read here; version 3 holds
any ``transformers`` model run through the hooked attention (``leopard trace-model --export``), read by
``hf_export.py``. Each reader names the command that takes the other's files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leopard.hw import fixedpoint
from leopard.hw.config import ConfigError, EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.npz import NpzBlocks, read_npz, write_npz
from leopard.model.training.bert import BertConfig, Classifier
from leopard.model.training.data import DataSpec, Tokenizer
from leopard.model.training.quantize import HardwareCore, Quantization, threshold_int

FORMAT = "leopard-export"
VERSION = 2
"""Version 2 adds ``key_channel_scale``; an export without finer key scaling is written as version 1
(which this reader still reads, as all ones), so older readers keep reading it."""
VERSIONS = (1, 2)
MODEL_VERSION = 3
"""The version of a ``transformers`` model's export (``hf_export.py``)."""
WEIGHT_PREFIX = "weight."
WEIGHT_DTYPES = ("float16", "float32")
TABLES = ("threshold", "threshold_int", "scale_q", "scale_k", "scale_v")
KEY_CHANNEL = "key_channel_scale"


class ExportError(LeopardError):
    """A malformed or inconsistent export file."""


def field_error(field: str, message: str) -> ExportError:
    return ExportError(f"field {field!r}: {message}")


@dataclass(frozen=True)
class EngineTables:
    """The engine's view of a model's attention, held by every export version: its engine config and per
    (layer, head) ``threshold`` (float, on ``q·k/√Dh``), ``threshold_int`` (score domain), ``scale_q``/
    ``scale_k``/``scale_v`` ``[layers, heads]``, and ``key_channel_scale`` ``[layers, heads, Dh]``: the
    relative key channel scales ``c_d`` of ``model/training/quantize.py`` (all 1: one key scale per
    head)."""

    config: EngineConfig
    threshold: np.ndarray
    threshold_int: np.ndarray
    scale_q: np.ndarray
    scale_k: np.ndarray
    scale_v: np.ndarray
    key_channel_scale: np.ndarray

    def quantization(self) -> Quantization:
        return Quantization(self.scale_q, self.scale_k, self.scale_v, self.key_channel_scale,
                            head_dim=self.key_channel_scale.shape[-1])


@dataclass(frozen=True)
class Export(EngineTables):
    """A trained classifier of the project's BERT ready for the engine (versions 1 and 2): the tables,
    ``weights`` (the classifier's state dict as float16/float32 arrays), ``tokenizer`` (the text of its
    ``tokenizer.json``), its labels, data and training settings."""

    bert: BertConfig
    tokenizer: str
    labels: tuple[str, ...]
    data: DataSpec
    data_sha256: str
    training: dict[str, Any]
    weights: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        validate(self)

    def text_tokenizer(self) -> Tokenizer:
        return Tokenizer(self.tokenizer, self.data.max_tokens)

    def hardware_core(self, *, prune: bool = True, capture: bool = False) -> HardwareCore:
        """The engine as the attention core of this export's model, with its scales and thresholds."""
        return HardwareCore(self.config, self.quantization(), self.threshold, self.threshold_int,
                            prune=prune, capture=capture)

    def version(self) -> int:
        """The lowest format version that holds this export: 2 with finer key scaling, else 1."""
        return 1 if (self.key_channel_scale == 1.0).all() else 2

    def classifier(self) -> Classifier:
        """The float32 classifier holding the exported weights, in evaluation mode."""
        model = Classifier(self.bert, len(self.labels))
        model.load_state_dict(
            {name: torch.from_numpy(w.astype(np.float32)) for name, w in self.weights.items()}
        )
        return model.eval()


def expected_weights(bert: BertConfig, labels: int) -> dict[str, tuple[int, ...]]:
    """Name and shape of every weight a classifier of this shape holds."""
    return {name: tuple(value.shape) for name, value in Classifier(bert, labels).state_dict().items()}


def validate(export: Export) -> None:
    """Check every field against the others; raise ``ExportError`` naming the first bad one."""
    bert = export.bert
    slots = bert.num_hidden_layers * bert.num_attention_heads
    if slots > export.config.threshold_regs:
        raise field_error("config", f"threshold_regs {export.config.threshold_regs} cannot hold {slots} "
                                    "(layer, head) slots")
    try:
        export.text_tokenizer()
    except LeopardError as error:
        raise field_error("tokenizer", str(error)) from None
    if len(export.labels) < 2 or not all(isinstance(label, str) for label in export.labels):
        raise field_error("model", "labels must be a list of at least two strings")
    shapes = expected_weights(bert, len(export.labels))
    for name, shape in shapes.items():
        field = WEIGHT_PREFIX + name
        weight = export.weights.get(name)
        if weight is None:
            raise field_error(field, "missing")
        if weight.dtype.name not in WEIGHT_DTYPES or weight.shape != shape:
            raise field_error(field, f"must be {' or '.join(WEIGHT_DTYPES)} of shape {shape}, "
                               f"got {weight.dtype} {weight.shape}")
        if not np.isfinite(weight).all():
            raise field_error(field, "holds a value that is not finite")
    extra = sorted(set(export.weights) - set(shapes))
    if extra:
        raise field_error(WEIGHT_PREFIX + extra[0], "is not a weight of this model")
    check_engine_tables(export, bert.num_hidden_layers, bert.num_attention_heads, bert.head_dim)


def check_engine_tables(export: Any, layers: int, heads: int, head_dim: int) -> None:
    """Check an export's engine config, scales and thresholds (``TABLES``, ``key_channel_scale``; any
    version) against the model's attention shape; raise ``ExportError`` naming the first bad field."""
    cfg = export.config
    if head_dim != cfg.head_dim:
        raise field_error("config", f"head_dim {cfg.head_dim} differs from the model's head dim {head_dim}")
    table_shape = (layers, heads)
    for name in TABLES:
        value = getattr(export, name)
        kind = np.integer if name == "threshold_int" else np.floating
        if not np.issubdtype(value.dtype, kind) or value.shape != table_shape:
            raise field_error(
                name, f"must be a {kind.__name__} array {table_shape}, not {value.dtype} {value.shape}"
            )
        if not np.isfinite(value).all():
            raise field_error(name, "holds a value that is not finite")
    for name in ("scale_q", "scale_k", "scale_v"):
        if (getattr(export, name) <= 0).any():
            raise field_error(name, "scales must be positive")
    channel = export.key_channel_scale
    if not np.issubdtype(channel.dtype, np.floating) or channel.shape != (*table_shape, head_dim):
        raise field_error(KEY_CHANNEL, f"must be a floating array {(*table_shape, head_dim)}, "
                                 f"not {channel.dtype} {channel.shape}")
    if not (np.isfinite(channel).all() and (channel > 0).all() and (channel <= 1).all()):
        raise field_error(KEY_CHANNEL, "relative key scales must lie in (0, 1]")
    for value in export.quantization().score_scale().ravel():
        try:
            fixedpoint.encode_scale(cfg, float(value))
        except LeopardError as error:
            raise field_error("scale_q", f"scale_q·scale_k/√Dh: {error}") from None
    expected = threshold_int(export.threshold, export.quantization().score_scale(), cfg)
    if not np.array_equal(export.threshold_int, expected):
        raise field_error("threshold_int", "differs from ⌈threshold / scale⌉ (clipped to the register range)")


def save(export: Export, path: str | Path) -> None:
    """Write ``export`` as a byte-reproducible ``.npz``, atomically."""
    model = {
        "bert": export.bert.to_dict(), "labels": list(export.labels), "data": export.data.to_dict(),
        "data_sha256": export.data_sha256, "training": export.training,
    }
    fields: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "version": np.array(export.version(), np.int64),
        "config": np.array(json.dumps(export.config.to_dict(), sort_keys=True)),
        "model": np.array(json.dumps(model, sort_keys=True)),
        "tokenizer": np.array(export.tokenizer),
    }
    for name in TABLES:
        fields[name] = getattr(export, name)
    if export.version() >= 2:
        fields[KEY_CHANNEL] = export.key_channel_scale
    for name in sorted(export.weights):
        fields[WEIGHT_PREFIX + name] = export.weights[name]
    write_npz(fields, path)


def load(path: str | Path) -> Export:
    """Read and validate an export; any problem is an ``ExportError`` naming the file and the field."""
    path = Path(path)
    fields = read_npz(path, "export", ExportError)
    try:
        return _from_fields(fields)
    except LeopardError as error:
        raise ExportError(f"export {path}: {error}") from None


def load_dense_control(path: str | Path, made: Export) -> Export:
    """The dense control of ``made`` (``leopard train --dense-control``): refused when it was trained with
    thresholds or on other data."""
    if version_of(path) == MODEL_VERSION:
        raise LeopardError(f"--dense-control {path} is a transformers model's export; the control of a BERT "
                           "export is the export of `leopard train --dense-control`")
    control = load(path)
    if control.training.get("prune", True):
        raise LeopardError(f"--dense-control {path} was trained with thresholds; give the export of "
                           "`leopard train --dense-control`")
    if control.data_sha256 != made.data_sha256 or control.data != made.data:
        raise LeopardError(f"--dense-control {path} was trained on other data; train it on the same data")
    if control.tokenizer != made.tokenizer or control.bert != made.bert:
        raise LeopardError(f"--dense-control {path} is another model (tokenizer or shape); train it from the "
                           "same checkpoint")
    return control


def string_field(fields: dict[str, np.ndarray], name: str) -> str:
    if name not in fields:
        raise field_error(name, "missing")
    value = fields[name]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise field_error(name, "must be a 0-d string")
    return str(value)


def json_field(fields: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    try:
        value = json.loads(string_field(fields, name))
    except json.JSONDecodeError as error:
        raise field_error(name, f"is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise field_error(name, "must hold a JSON object")
    return value


def version_of(path: str | Path) -> int:
    """The format version of the export at ``path``, read without its other fields."""
    with NpzBlocks(path, "export", ExportError) as archive:
        fields = {name: archive.read(name, checked=True) for name in ("format", "version")
                  if name in archive.members}
    try:
        return file_version(fields)
    except LeopardError as error:
        raise ExportError(f"export {path}: {error}") from None


def file_version(fields: dict[str, np.ndarray]) -> int:
    """The export's format version (any this leopard reads: ``VERSIONS`` or ``MODEL_VERSION``)."""
    if string_field(fields, "format") != FORMAT:
        raise field_error("format", f"must be {FORMAT!r}: this is not a leopard export")
    version = fields.get("version")
    if version is None:
        raise field_error("version", "missing")
    known = (*VERSIONS, MODEL_VERSION)
    if version.ndim != 0 or not np.issubdtype(version.dtype, np.integer) or int(version) not in known:
        raise field_error("version", f"must be {', '.join(map(str, known))} (the versions this leopard "
                                     f"reads), got {version!r}")
    return int(version)


def config_field(fields: dict[str, np.ndarray]) -> EngineConfig:
    """The engine config an export holds (field ``config``)."""
    try:
        return EngineConfig.from_json(string_field(fields, "config"))
    except ConfigError as error:
        raise field_error("config", str(error)) from None


def _from_fields(fields: dict[str, np.ndarray]) -> Export:
    version = file_version(fields)
    if version == MODEL_VERSION:
        raise field_error("version", f"{version}: a transformers model's export, not the project's BERT; "
                                     "give it to leopard evaluate, leopard trace or trace-model --model")
    cfg = config_field(fields)
    model = json_field(fields, "model")
    kinds = (("bert", dict), ("labels", list), ("data", dict), ("data_sha256", str), ("training", dict))
    for key, kind in kinds:
        if not isinstance(model.get(key), kind):
            raise field_error("model", f"key {key!r} must be a JSON {kind.__name__}")
    try:
        bert = BertConfig.from_dict(model["bert"])
        data = DataSpec.from_dict(model["data"])
    except (TypeError, LeopardError) as error:
        raise field_error("model", str(error)) from None
    sizes = [value for key, value in bert.to_dict().items() if key != "layer_norm_eps"]
    if any(not isinstance(value, int) or value < 1 for value in sizes):
        raise field_error("model", "bert sizes must be positive integers")
    for name in TABLES:
        if name not in fields:
            raise field_error(name, "missing")
    if version >= 2 and KEY_CHANNEL not in fields:
        raise field_error(KEY_CHANNEL, "missing")
    layers, heads, dim = bert.num_hidden_layers, bert.num_attention_heads, bert.head_dim
    channel = fields[KEY_CHANNEL] if version >= 2 else np.ones((layers, heads, dim))
    weights = {name.removeprefix(WEIGHT_PREFIX): value for name, value in fields.items()
               if name.startswith(WEIGHT_PREFIX)}
    return Export(
        config=cfg, bert=bert, tokenizer=string_field(fields, "tokenizer"), labels=tuple(model["labels"]),
        data=data, data_sha256=model["data_sha256"], training=model["training"], weights=weights,
        **{name: fields[name] for name in TABLES}, key_channel_scale=channel,
    )


def round_weights(model: Classifier, dtype: str) -> dict[str, np.ndarray]:
    """The classifier's state dict as ``dtype`` arrays (the weights an export holds)."""
    if dtype not in WEIGHT_DTYPES:
        raise LeopardError(f"weights dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    return {name: value.detach().numpy().astype(dtype) for name, value in model.state_dict().items()}

