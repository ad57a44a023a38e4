"""A model's task quality with 95 % intervals (bootstrap over examples, ``confidence.py``), own attention
against the engine and, given one, against a dense control on the same examples:

- a decoder: next-token accuracy (percent) and perplexity over the predicted tokens of the sentences,
  the changes in points and in percent of perplexity;
- a classifier (an encoder's sentences, a vision model's images): accuracy (percent) and mean
  cross-entropy loss (nats) over the examples, the changes in points and in nats.

Each example is one row of ``counts``: ``(correct, negative log-likelihood, predictions)``, summed over
its tokens for a decoder's sentence, ``(0|1, nll, 1)`` for a classified sentence or image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from leopard.model.reference import confidence

MEASURES = {"decoder": ("next_token_accuracy", "perplexity"), "vision": ("accuracy", "loss"),
            "encoder": ("accuracy", "loss")}
"""The accuracy and the spread measure of each family with a task figure."""
REPORT_KEY = {"decoder": "language_model", "vision": "image_classification", "encoder": "text_classification"}
"""Where ``model-trace.json`` puts a family's figures."""
COUNTED = {"decoder": "tokens", "vision": "images", "encoder": "sentences"}
SPREAD_CHANGE = {"decoder": ("perplexity_change_percent", "perplexity change", "%"),
                 "vision": ("loss_change", "loss change", "nats"),
                 "encoder": ("loss_change", "loss change", "nats")}
"""The key, label and unit of each family's spread change."""


def predicted(valid: torch.Tensor) -> torch.Tensor:
    """``[B, N − 1]``: the tokens a language model predicts, every valid token after the first."""
    return valid[:, 1:] & valid[:, :-1]


def next_token_counts(logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """``[B, 3]`` per sentence: tokens predicted correctly, their negative log-likelihood (nats), and
    tokens predicted (``predicted``)."""
    target = ids[:, 1:]
    counted = predicted(valid)
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    correct = (logits[:, :-1].argmax(dim=-1) == target) & counted
    return np.stack([correct.sum(dim=1).numpy(), torch.where(counted, nll, 0.0).sum(dim=1).numpy(),
                     counted.sum(dim=1).numpy()], axis=1).astype(np.float64)


def label_counts(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``[B, 3]`` per example: right (1/0), the label's negative log-likelihood (nats), 1."""
    nll = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none")
    right = (logits.argmax(dim=-1) == labels).double()
    return torch.stack([right, nll, torch.ones_like(nll)], dim=1).numpy()


def counts(family: str, logits: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> np.ndarray:
    """The ``counts`` rows of one batch: a decoder's ``(ids, valid)``, a classifier's, labels last."""
    return next_token_counts(logits, *batch) if family == "decoder" else label_counts(logits, batch[-1])


def _spread(family: str) -> Any:
    return np.exp if family == "decoder" else (lambda nll: nll)


def rates(family: str, counts: np.ndarray, seed: int) -> dict[str, Any]:
    """The accuracy (percent) and the spread measure of ``counts`` rows, with intervals."""
    accuracy, spread = MEASURES[family]
    total = counts[:, 2]
    return {accuracy: confidence.ratio(counts[:, 0], total, seed, lambda rate: 100.0 * rate),
            spread: confidence.ratio(counts[:, 1], total, seed, _spread(family))}


def changes(family: str, counts: np.ndarray, reference: np.ndarray, seed: int) -> dict[str, Any]:
    """``counts``' accuracy change (points) and spread change (perplexity: percent; loss: nats) against
    ``reference`` on the same examples, with paired intervals."""
    total = counts[:, 2]
    if family == "decoder":
        def compare(nll: np.ndarray, base: np.ndarray) -> np.ndarray:
            return 100.0 * np.expm1(nll - base)
    else:
        def compare(nll: np.ndarray, base: np.ndarray) -> np.ndarray:
            return nll - base
    return {
        "accuracy_change": confidence.ratio_difference(
            counts[:, 0], reference[:, 0], total, seed, lambda rate, base: 100.0 * (rate - base)),
        SPREAD_CHANGE[family][0]: confidence.ratio_difference(counts[:, 1], reference[:, 1], total, seed,
                                                              compare),
    }


def task_figures(family: str, dense: np.ndarray, engine: np.ndarray, seed: int,
                 control: np.ndarray | None = None) -> dict[str, Any]:
    """The family's figures, own attention (``dense``) and through the engine, with intervals; with
    ``control`` also its own figures and the engine's paired differences against them."""
    own, through = rates(family, dense, seed), rates(family, engine, seed)
    figures = {
        COUNTED[family]: int(dense[:, 2].sum()),
        **{name: {"dense": own[name], "engine": through[name]} for name in own},
        **changes(family, engine, dense, seed),
    }
    if control is not None:
        figures["dense_control"] = {**rates(family, control, seed), **changes(family, engine, control, seed)}
    return figures


def table(family: str, figures: dict[str, Any]) -> str:
    """The figures as a text table, values with their intervals."""

    def cell(entry: dict[str, Any]) -> str:
        low, high = entry["ci95"]
        return f"{entry['value']:.2f} [{low:.2f}, {high:.2f}]"

    accuracy, spread = MEASURES[family]
    what = "next-token accuracy" if family == "decoder" else "accuracy"
    spread_key, spread_label, unit = SPREAD_CHANGE[family]
    rows = [(f"{what}, own attention (%)", cell(figures[accuracy]["dense"])),
            (f"{what}, engine (%)", cell(figures[accuracy]["engine"])),
            ("change (points)", cell(figures["accuracy_change"])),
            (f"{spread}, own attention", cell(figures[spread]["dense"])),
            (f"{spread}, engine", cell(figures[spread]["engine"])),
            (f"{spread_label} ({unit})", cell(figures[spread_key]))]
    if "dense_control" in figures:
        control = figures["dense_control"]
        rows += [(f"{what}, dense control (%)", cell(control[accuracy])),
                 ("change against it (points)", cell(control["accuracy_change"])),
                 (f"{spread}, dense control", cell(control[spread])),
                 (f"{spread_label} against it ({unit})", cell(control[spread_key]))]
    width = max(len(name) for name, _ in rows)
    counted = COUNTED[family]
    lines = [f"{name:<{width}}  {value}" for name, value in rows] + [f"({figures[counted]} {counted})"]
    return "\n".join(lines)
