"""PNG figures of the training results: the accuracy / pruning trade-off and per-head threshold maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import plots


def tradeoff(
    rows: list[dict[str, Any]], finetune_accuracy: float | None, control: dict[str, float], path: Path
) -> None:
    """Accuracy of the quantized, hard-pruned model (and of its weights in float, unpruned) against the
    fraction of scores pruned, one point per ``λ``; the dense control and the fine-tuned model as lines."""
    plt = plots.pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    pruned = [100 * row["pruned_fraction"] for row in rows]
    axes.plot(pruned, [row["accuracy_quantized_pruned"] for row in rows], "o-", label="quantized + pruned")
    axes.plot(pruned, [row["accuracy_float"] for row in rows], "s--", mfc="none",
              label="same weights, float dense")
    for row, x in zip(rows, pruned, strict=True):
        axes.annotate(f"λ={row['lambda']:g}", (x, row["accuracy_quantized_pruned"]),
                      textcoords="offset points", xytext=(4, -12), fontsize=8)
    axes.axhline(control["float"], color="black", lw=0.8, ls="-.", label="dense control, float")
    if finetune_accuracy is not None:
        axes.axhline(finetune_accuracy, color="grey", lw=0.8, ls=":", label="fine-tuned, before pruning")
    axes.set_xlabel("attention scores pruned (%)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("MiniLM on Rotten Tomatoes: learned per-head thresholds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    plots.save(figure, path)


def threshold_map(theta: np.ndarray, pruned: np.ndarray, title: str, path: Path) -> None:
    """Two heat maps over (layer, head): learned ``θ`` (units of ``q·k/√Dh``) and the fraction pruned."""
    plt = plots.pyplot()
    layers, heads = theta.shape
    figure, panes = plt.subplots(1, 2, figsize=(12, 3.6))
    for pane, values, label, fmt in (
        (panes[0], theta, "threshold θ (q·k/√Dh)", "{:.1f}"),
        (panes[1], 100 * pruned, "scores pruned (%)", "{:.0f}"),
    ):
        image = pane.imshow(values, cmap="viridis", aspect="auto")
        for layer in range(layers):
            for head in range(heads):
                pane.text(head, layer, fmt.format(values[layer, head]), ha="center", va="center",
                          fontsize=7, color="white")
        pane.set_xticks(range(heads))
        pane.set_yticks(range(layers))
        pane.set_xlabel("head")
        pane.set_ylabel("layer")
        pane.set_title(label)
        figure.colorbar(image, ax=pane, fraction=0.04)
    figure.suptitle(title)
    figure.tight_layout()
    plots.save(figure, path)
