"""Accuracy of an exported model on held-out sentences, four ways: float dense, float hard-pruned,
quantized dense (the engine in dense mode) and quantized hard-pruned (what the hardware computes).

Accuracies are in percent; ``accuracy_loss`` (BRIEF §5) is quantized+pruned minus float dense, in
percentage points, on the same sentences and the same weights. Each comes with its 95 % bootstrap
interval over the sentences (``confidence``; the loss's is paired), and with a dense control (the same
training schedule without thresholds) the paired difference against it, evaluated in float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from leopard.model.reference import confidence
from leopard.model.training.bert import AttentionCore, Classifier, dense_core
from leopard.model.training.data import Examples, Tokenizer, pad
from leopard.model.training.export import Export
from leopard.model.training.pruned_attention import PrunedCore, Thresholds
from leopard.model.training.quantize import HardwareCore

EVAL_BATCH = 64


def batches_by_length(
    ids: list[list[int]], batch_size: int = EVAL_BATCH
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """``(indices, ids, valid)`` batches of sentences sorted by length (then index): little padding."""
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    for start in range(0, len(order), batch_size):
        chosen = np.array(order[start : start + batch_size])
        tokens, valid = pad([ids[i] for i in chosen])
        yield chosen, tokens, valid


def predict(
    model: Classifier, ids: list[list[int]], make_core: Callable[[], AttentionCore]
) -> tuple[np.ndarray, list[AttentionCore]]:
    """Predicted label per sentence, and the cores used (one per batch, holding their statistics)."""
    predictions = np.zeros(len(ids), np.int64)
    cores = []
    with torch.no_grad():
        for chosen, tokens, valid in batches_by_length(ids):
            core = make_core()
            predictions[chosen] = model(tokens, valid, core).argmax(dim=-1).numpy()
            cores.append(core)
    return predictions, cores


def percent(predictions: np.ndarray, labels: np.ndarray) -> float:
    return round(100.0 * float((predictions == labels).mean()), 4)


def float_accuracy(model: Classifier, examples: Examples, tokenizer: Tokenizer) -> float:
    """Accuracy (percent) of the float model with dense attention."""
    predictions, _ = predict(model, tokenizer.encode(examples.texts), lambda: dense_core)
    return percent(predictions, examples.labels)


def evaluate(
    export: Export, examples: Examples, control: Export | None = None, seed: int = 0
) -> dict[str, Any]:
    """The four accuracies with their intervals, pruning statistics per (layer, head), the float/integer
    decision flips, and with ``control`` the paired difference against it."""
    model = export.classifier()
    ids = export.text_tokenizer().encode(examples.texts)
    thresholds = Thresholds(*export.threshold.shape)
    thresholds.theta.data = torch.from_numpy(export.threshold.astype(np.float32))
    predicted = {}
    predictions, _ = predict(model, ids, lambda: dense_core)
    predicted["float"] = predictions
    predictions, float_cores = predict(model, ids, lambda: PrunedCore(thresholds, soft=False))
    predicted["float_pruned"] = predictions

    def hardware(prune: bool) -> Callable[[], HardwareCore]:
        return lambda: export.hardware_core(prune=prune)

    predictions, _ = predict(model, ids, hardware(False))
    predicted["quantized"] = predictions
    predictions, cores = predict(model, ids, hardware(True))
    predicted["quantized_pruned"] = predictions
    accuracy = {kind: percent(values, examples.labels) for kind, values in predicted.items()}
    correct = {kind: values == examples.labels for kind, values in predicted.items()}
    paired = {}
    if control is not None:
        control_predictions, _ = predict(control.classifier(), ids, lambda: dense_core)
        paired["difference_vs_dense_control"] = confidence.paired_difference(
            correct["quantized_pruned"], control_predictions == examples.labels, seed)
    pairs = sum(core.stats.pairs for core in cores)
    kept = sum(core.stats.kept for core in cores)
    flips = sum(core.flips for core in cores)
    float_kept = sum(core.stats.kept for core in float_cores)
    float_pairs = sum(core.stats.pairs for core in float_cores)
    return {
        "sentences": len(examples),
        "accuracy": accuracy,
        "accuracy_ci95": {kind: confidence.accuracy(right, seed)["ci95"] for kind, right in correct.items()},
        "accuracy_loss": round(accuracy["quantized_pruned"] - accuracy["float"], 4),
        "accuracy_loss_ci95": confidence.paired_difference(correct["quantized_pruned"], correct["float"],
                                                           seed)["ci95"],
        **paired,
        "pairs": int(pairs.sum()),
        "pruned_fraction": round(1.0 - float(kept.sum()) / float(pairs.sum()), 6),
        "pruned_fraction_float": round(1.0 - float(float_kept.sum()) / float(float_pairs.sum()), 6),
        "pruned_per_head": np.round(1.0 - kept / pairs, 4).tolist(),
        "empty_queries": int(sum(core.empty_queries for core in cores)),
        "queries": int(sum(core.queries for core in cores)),
        "decision_flips": int(flips.sum()),
        "decision_flips_fraction": round(float(flips.sum()) / float(pairs.sum()), 8),
        "decision_flips_per_head": flips.tolist(),
    }
