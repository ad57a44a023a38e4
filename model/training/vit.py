"""A small vision transformer the project trains itself (no pretrained ViT installs offline): a
``transformers`` ``ViTForImageClassification`` (patch embedding, a CLS token, pre-norm blocks, the CLS
token's classifier), trained from random weights on one-channel images (``images.py``), then saved as a
plain checkpoint that ``leopard trace-model`` and ``train-model`` load like any other model.

Training: ``epochs`` passes over the training images in ``default_rng([seed, epoch])`` order,
``batch_size`` at a time; AdamW at ``lr`` with a linear warm-up over the first ``warmup`` share of the
steps and a cosine decay to 0; weight decay 0.05; gradient norm clipped at 1; no dropout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from leopard.hw.errors import LeopardError
from leopard.model.training.images import Images, ImageSet, batches, pixel_values


@dataclass(frozen=True)
class VitSettings:
    """The architecture and the training schedule; ``hidden / heads`` is the head dim."""

    layers: int = 4
    heads: int = 3
    hidden: int = 96
    mlp: int = 192
    patch: int = 4
    epochs: float = 5.0
    batch_size: int = 64
    lr: float = 2e-3
    warmup: float = 0.05
    seed: int = 0

    def check(self, side: int) -> None:
        if self.hidden % self.heads:
            raise LeopardError(f"--hidden {self.hidden} must be a multiple of --heads {self.heads}")
        if side % self.patch:
            raise LeopardError(f"--patch {self.patch} must divide the image side {side}")


def build(settings: VitSettings, side: int, classes: int) -> Any:
    """A randomly initialized ``ViTForImageClassification`` (seeded by ``settings.seed``), eager attention."""
    import transformers

    settings.check(side)
    torch.manual_seed(settings.seed)
    config = transformers.ViTConfig(
        image_size=side, patch_size=settings.patch, num_channels=1, hidden_size=settings.hidden,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
        intermediate_size=settings.mlp, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        num_labels=classes, attn_implementation="eager",
    )
    return transformers.ViTForImageClassification(config)


def accuracy_counts(model: Any, images: Images, size: int = 256) -> np.ndarray:
    """``[n]`` 1/0: whether the model classifies each image right (its own attention)."""
    model.eval()
    right = []
    with torch.no_grad():
        for pixels, labels in batches(images, size):
            right.append((model(pixel_values=pixels).logits.argmax(dim=-1) == labels).numpy())
    return np.concatenate(right).astype(np.int64)


def train(data: ImageSet, settings: VitSettings,
          progress: Callable[[str], None] = lambda message: None) -> tuple[Any, list[dict[str, Any]]]:
    """The trained model and its log (see the module docstring)."""
    side = data.train.pixels.shape[1]
    model = build(settings, side, data.classes)
    per_epoch = len(data.train) // settings.batch_size
    if per_epoch < 1:
        raise LeopardError(f"--batch-size {settings.batch_size} is over the {len(data.train)} training "
                           "images")
    total = max(1, round(settings.epochs * per_epoch))
    warm = max(1, round(settings.warmup * total))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(step, total) / total))))
    inputs = pixel_values(data.train.pixels)
    labels = torch.from_numpy(data.train.labels)
    log: list[dict[str, Any]] = []
    model.train()
    for step in range(total):
        epoch, position = divmod(step, per_epoch)
        if position == 0:
            order = np.random.default_rng([settings.seed, epoch]).permutation(len(data.train))
        chosen = torch.from_numpy(order[position * settings.batch_size:(position + 1) * settings.batch_size])
        loss = torch.nn.functional.cross_entropy(model(pixel_values=inputs[chosen]).logits, labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == total - 1:
            log.append({"step": step, "loss": round(float(loss.detach()), 6)})
            progress(f"step {step + 1}/{total} (epoch {epoch + 1}): loss {log[-1]['loss']:.4f}")
    model.eval()
    return model, log


def summary(settings: VitSettings, data: ImageSet, log: list[dict[str, Any]],
            test_accuracy: dict[str, Any]) -> dict[str, Any]:
    """What ``training.json`` records."""
    return {"settings": asdict(settings), "data": data.name, "data_sha256": data.sha256,
            "train_images": len(data.train), "test_images": len(data.test),
            "test_accuracy": test_accuracy, "log": log}
