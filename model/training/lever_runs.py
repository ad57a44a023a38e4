"""One export under one quantization, ready for the lever bench: requantized when the variant asks for
other clipping or key scales (``train.requantize``), its accuracy on the held-out sentences
(``evaluate``) and the attention trace of the bench's sentences (``capture``), cached in a work folder
under a key of the export's bytes, the quantization and the sentences, so a rerun only computes what
changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import all_or_nothing, write_json
from leopard.model.reference import trace as trace_file
from leopard.model.training import capture, data, export
from leopard.model.training.evaluate import evaluate
from leopard.model.training.quantize import QuantSettings
from leopard.model.training.train import requantize

QUANTIZATION_KEYS = tuple(asdict(QuantSettings()))


@dataclass(frozen=True)
class Prepared:
    """A variant's training settings, its ``evaluate`` report and its trace."""

    training: dict[str, Any]
    evaluation: dict[str, Any]
    trace: trace_file.Trace


def quant_settings(values: dict[str, Any], where: str) -> QuantSettings | None:
    """The variant's quantization (``None``: the export's own); one-line errors for unknown keys."""
    unknown = sorted(set(values) - set(QUANTIZATION_KEYS))
    if unknown:
        raise LeopardError(f"{where}: unknown quantization setting {unknown[0]!r}; "
                           f"use {', '.join(QUANTIZATION_KEYS)}")
    return QuantSettings(**values) if values else None


def _saved(record: Path) -> dict[str, Any]:
    """The work folder's record, or nothing when it is missing or unreadable (it is recomputed)."""
    try:
        saved = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return saved if isinstance(saved, dict) and {"training", "evaluation"} <= saved.keys() else {}


def prepare(export_path: Path, quant: QuantSettings | None, sentences: int, seed: int,
            work: Path, threads: int) -> Prepared:
    """The variant ``export_path`` under ``quant``, computed with ``threads`` torch threads (the trace and
    the evaluation depend on them) or reused from ``work``."""
    digest = hashlib.sha256(export_path.read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps({
        "export": digest,
        "quantization": None if quant is None else asdict(quant), "sentences": sentences, "seed": seed,
        "threads": threads,
    }, sort_keys=True).encode()).hexdigest()
    record, trace_path = work / "variant.json", work / "trace.npz"
    saved = _saved(record)
    if saved.get("key") == key and trace_path.exists():
        return Prepared(saved["training"], saved["evaluation"], trace_file.load(trace_path))
    record.unlink(missing_ok=True)
    made = export.load(export_path)
    dataset = data.load_dataset(made.data)
    if dataset.sha256 != made.data_sha256:
        raise LeopardError(f"data {made.data.data} differs from the file {export_path} was trained on")
    if quant is not None:
        made = requantize(made, dataset, quant)
    chosen = capture.pick(dataset.test, sentences, seed)
    source = (f"leopard bench-levers: export sha256 {digest[:16]}, quantization "
              f"{made.training.get('clip_percentile', 100.0)}/{made.training.get('clip_q_percentile', 100.0)}"
              f"/{made.training.get('key_block', 0)}, {sentences} test sentences (seed {seed})")
    captured = capture.capture(made, dataset.test, chosen, source)
    evaluation = evaluate(made, dataset.test)
    with all_or_nothing():
        trace_file.save(captured.trace, trace_path)
        write_json(record, {"key": key, "training": made.training, "evaluation": evaluation})
    return Prepared(made.training, evaluation, captured.trace)
