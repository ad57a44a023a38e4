"""Version 3 of the exported model (``docs/formats.md``, "Exported model"): any ``transformers`` model
run through the hooked attention, in one ``.npz`` with the files that describe it (its ``config.json``
and its tokenizer's files), its float32 weights, the engine config, and the quantization scales and
thresholds of every (layer, head) that ``leopard trace-model --export`` calibrated and traced it with.

``leopard trace-model --model FILE.npz`` runs it again with those scales and thresholds, without
calibrating: the same examples give the same trace. Versions 1 and 2 (the project's own BERT) are
``export.py``'s; each reader names the command that takes the other's files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.npz import read_npz, write_npz
from leopard.model.training import hf_models, hf_trace
from leopard.model.training.export import (
    FORMAT,
    KEY_CHANNEL,
    MODEL_VERSION,
    TABLES,
    WEIGHT_PREFIX,
    EngineTables,
    ExportError,
    check_engine_tables,
    config_field,
    field_error,
    file_version,
    json_field,
)
from leopard.model.training.hf_models import FAMILIES, HFModel, ModelSource, attention_shape
from leopard.model.training.quantize import Quantization, QuantSettings, threshold_int

FILE_PREFIX = "file."
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ModelExport(EngineTables):
    """A ``transformers`` model with the engine's view of its attention (``export.EngineTables``).

    ``files``: the bytes of ``config.json`` and of the tokenizer's files (none for a vision model) by
    name; ``weights``: the model's state dict as float32 arrays; ``made_by``: what made the export (the
    ``--model`` it came from, the quantization settings, where its thresholds came from, its data
    options).
    """

    family: str
    made_by: dict[str, Any]
    files: dict[str, bytes]
    weights: dict[str, np.ndarray]

    def source(self, name: str) -> ModelSource:
        """The model as ``hf_models.find`` gives a checkpoint: its files unpacked into a folder that lives
        as long as the source, its weights loaded from the export (``ModelSource.load``)."""
        import transformers

        folder = Path(tempfile.mkdtemp(prefix="leopard-export."))
        for file_name, content in self.files.items():
            (folder / file_name).write_bytes(content)
        try:
            config = transformers.AutoConfig.from_pretrained(folder)
        except (OSError, ValueError) as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise field_error(FILE_PREFIX + CONFIG_FILE, "transformers cannot read it: "
                                                         f"{str(error).splitlines()[0]}") from None
        found = ModelSource(name, folder, None, config, self.family, *attention_shape(config), export=self)
        weakref.finalize(found, shutil.rmtree, folder, True)
        check_weights(found)
        return found


def from_trace(made: HFModel, cfg: EngineConfig, quant: Quantization, threshold_int: np.ndarray,
               theta: np.ndarray | None, made_by: dict[str, Any]) -> ModelExport:
    """The export of ``made`` as traced with ``quant`` and ``threshold_int``. ``theta``: the learned
    thresholds (``None``: quantile ones, stored as ``(θ_int − ½)·scale``, a ``θ`` whose ``⌈θ / scale⌉``
    is ``θ_int`` exactly)."""
    scale = quant.score_scale()
    threshold = (threshold_int - 0.5) * scale if theta is None else np.asarray(theta, np.float64)
    with tempfile.TemporaryDirectory(prefix="leopard-export.") as folder:
        made.model.config.save_pretrained(folder)
        if made.tokenizer is not None:
            made.tokenizer.save_pretrained(folder)
        files = {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}
    weights = {name: value.detach().float().numpy().copy() for name, value in made.model.state_dict().items()}
    return ModelExport(config=cfg, threshold=threshold, threshold_int=threshold_int.astype(np.int64),
                       scale_q=quant.scale_q, scale_k=quant.scale_k, scale_v=quant.scale_v,
                       key_channel_scale=quant.key_channel, family=made.family, made_by=made_by, files=files,
                       weights=weights)


def calibrated(made: HFModel, cfg: EngineConfig, calibration: list[Any], settings: QuantSettings,
               theta: np.ndarray | None, made_by: dict[str, Any]) -> ModelExport:
    """The export of a trained model: scales calibrated on the ``calibration`` batches as
    ``trace-model`` calibrates them, ``θ_int = ⌈θ / scale⌉`` of the learned ``theta``, or for a dense
    control (``None``) the register's minimum, so that the engine keeps every key."""
    quant = hf_trace.calibrate(made, cfg, calibration, settings)
    if theta is None:
        threshold = np.full((made.layers, made.heads), cfg.threshold_min, np.int64)
    else:
        threshold = threshold_int(theta, quant.score_scale(), cfg)
    return from_trace(made, cfg, quant, threshold, theta, made_by)


def check_weights(found: ModelSource) -> None:
    """The export's weights are exactly the state dict of the model its config describes (built without
    memory, on torch's meta device): a weight missing, extra or of another shape is an ``ExportError``."""
    import torch

    with torch.device("meta"):
        own = found.loader().from_config(found.config, attn_implementation="eager").state_dict()
    weights = found.export.weights
    for name, value in own.items():
        if name not in weights:
            raise field_error(WEIGHT_PREFIX + name, "missing")
        if weights[name].shape != tuple(value.shape):
            raise field_error(WEIGHT_PREFIX + name, f"must have shape {tuple(value.shape)}, got "
                                                    f"{weights[name].shape}")
    extra = sorted(set(weights) - set(own))
    if extra:
        raise field_error(WEIGHT_PREFIX + extra[0], "is not a weight of this model")


def validate(made: ModelExport, layers: int, heads: int, head_dim: int) -> None:
    """Check the export's weights and tables against the attention shape its ``config.json`` gives; raise
    ``ExportError`` naming the first bad field (the weights' names and shapes: ``check_weights``)."""
    for name, weight in made.weights.items():
        if weight.dtype != np.float32 or not np.isfinite(weight).all():
            raise field_error(WEIGHT_PREFIX + name, f"must be finite float32, got {weight.dtype}")
    check_engine_tables(made, layers, heads, head_dim)


def save(made: ModelExport, path: str | Path) -> None:
    """Write ``made`` as a byte-reproducible ``.npz``, atomically."""
    fields: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "version": np.array(MODEL_VERSION, np.int64),
        "config": np.array(json.dumps(made.config.to_dict(), sort_keys=True)),
        "model": np.array(json.dumps({"family": made.family, "made_by": made.made_by}, sort_keys=True)),
    }
    for name in (*TABLES, KEY_CHANNEL):
        fields[name] = getattr(made, name)
    for name in sorted(made.files):
        fields[FILE_PREFIX + name] = np.frombuffer(made.files[name], np.uint8)
    for name in sorted(made.weights):
        fields[WEIGHT_PREFIX + name] = made.weights[name]
    write_npz(fields, path)


def find(name: str) -> ModelSource:
    """The model ``--model name`` names: an export file (``.npz``: ``load``), else ``hf_models.find``'s."""
    if name.endswith(".npz"):
        return load(name)
    return hf_models.find(name)


def load(path: str | Path) -> ModelSource:
    """The model an export holds, as ``hf_models.find`` gives a checkpoint (``ModelSource.export`` holds
    the export, whose weights ``ModelSource.load`` loads); any problem is an ``ExportError`` naming the
    file and the field."""
    fields = read_npz(path, "export", ExportError)
    try:
        made = _from_fields(fields)
        found = made.source(str(path))
        validate(made, found.layers, found.heads, found.head_dim)
    except LeopardError as error:
        raise ExportError(f"export {path}: {error}") from None
    return found


def _from_fields(fields: dict[str, np.ndarray]) -> ModelExport:
    version = file_version(fields)
    if version != MODEL_VERSION:
        raise field_error("version", f"{version}: an export of the project's BERT (leopard train); give "
                                     "it to leopard evaluate or leopard trace")
    cfg = config_field(fields)
    model = json_field(fields, "model")
    if not isinstance(model.get("made_by"), dict):
        raise field_error("model", "key 'made_by' must be a JSON object")
    if model.get("family") not in FAMILIES:
        raise field_error("model", f"key 'family' must be one of {', '.join(FAMILIES)}, got "
                                   f"{model.get('family')!r}")
    for name in (*TABLES, KEY_CHANNEL, FILE_PREFIX + CONFIG_FILE):
        if name not in fields:
            raise field_error(name, "missing")
    files = {}
    for name, value in fields.items():
        if name.startswith(FILE_PREFIX):
            if value.dtype != np.uint8 or value.ndim != 1:
                raise field_error(name, "must be a 1-d uint8 array (the file's bytes)")
            files[name.removeprefix(FILE_PREFIX)] = value.tobytes()
    weights = {name.removeprefix(WEIGHT_PREFIX): value for name, value in fields.items()
               if name.startswith(WEIGHT_PREFIX)}
    return ModelExport(config=cfg, family=model["family"], made_by=model["made_by"], files=files,
                       weights=weights, **{name: fields[name] for name in (*TABLES, KEY_CHANNEL)})
