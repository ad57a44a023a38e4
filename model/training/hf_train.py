"""Threshold training for a ``transformers`` model through the hooked attention (``hf_attention.py``):
a decoder with its own language-model loss, an encoder's sequence classifier or a vision classifier with
the labels' cross-entropy. One threshold per (layer, head) is learned with the soft mask, then the
weights are fine-tuned under the hard mask, as ``train.py`` does for the project's own BERT.

Phases (one training batch per step: sentences padded on the right to at most ``max_tokens``, or
images; AdamW, gradient norm clipped at 1; the batches visited in ``default_rng([seed, pass])``
permutations):

0. **fine-tune** ``finetune_steps`` steps (0 unless asked: an encoder's new classifier head needs them),
   dense attention, the learning rate rising linearly over the first tenth to ``lr``;
1. **soft** ``soft_steps`` steps: ``θ`` starts at each head's ``init_quantile`` quantile of its visible
   scores ``scaling·q·k`` on the calibration batches (with the weights as fine-tuned); the loss is the
   task's cross-entropy plus ``λ·mean(m)``, ``m = sigmoid((s − θ)/T)`` over every visible pair of every
   layer and head, ``T`` falling geometrically from ``temperature_start`` to ``temperature_end``; ``θ``
   learns at ``theta_lr``, the weights at ``lr``;
2. **hard** ``hard_steps`` steps: ``m = [s ≥ θ]``, ``θ`` fixed, the weights' learning rate falling
   linearly from ``lr`` to 0.

With ``distill > 0`` phases 1 and 2 add ``distill · KL(teacher ‖ model)``: the teacher is the model as it
came out of phase 0 (a frozen copy, its own dense float attention), the divergence taken over the
predicted tokens' next-token distributions (decoder) or the examples' class distributions, averaged.

The **dense control** (``prune=False``) runs the same steps with dense attention and the same learning
rates: what the same fine-tuning reaches without pruning. ``leopard trace-model --thresholds`` then
runs the trained model with the learned ``θ`` in place of quantiles.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from leopard.hw.errors import LeopardError
from leopard.model.training.bert import dense_core
from leopard.model.training.hf_attention import AttentionHook
from leopard.model.training.hf_figures import predicted
from leopard.model.training.hf_models import HFModel
from leopard.model.training.hf_trace import Batch, forward, run_hooked
from leopard.model.training.pruned_attention import PrunedCore, Thresholds, scaled_scores, visible_pairs


@dataclass(frozen=True)
class ModelTrainSettings:
    """Everything that decides the trained weights and thresholds, with the sentences."""

    lam: float = 0.2
    finetune_steps: int = 0
    soft_steps: int = 100
    hard_steps: int = 50
    batch_size: int = 8
    lr: float = 1e-5
    theta_lr: float = 0.02
    temperature_start: float = 0.5
    temperature_end: float = 0.05
    init_quantile: float = 0.5
    distill: float = 0.0
    seed: int = 0
    prune: bool = True

    def check(self) -> None:
        if self.finetune_steps < 0:
            raise LeopardError(f"the dense fine-tune (--epochs) must be at least 0 steps, got "
                               f"{self.finetune_steps}")
        if self.soft_steps < 1 and self.prune:
            raise LeopardError("--soft-steps must be at least 1 when thresholds are learned")
        if not 0.0 <= self.init_quantile < 1.0:
            raise LeopardError(f"--init-quantile must be in [0, 1), got {self.init_quantile}")
        if self.distill < 0:
            raise LeopardError(f"--distill must be at least 0, got {self.distill}")


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the predicted tokens (``hf_trace.predicted``)."""
    counted = predicted(valid)
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return (losses * counted).sum() / counted.sum().clamp_min(1)


def task_loss(made: HFModel, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The family's training loss: ``lm_loss`` for a decoder, the mean cross-entropy of the labels (the
    batch's last part) for a classifier."""
    if made.family == "decoder":
        return lm_loss(logits, *batch)
    return torch.nn.functional.cross_entropy(logits, batch[-1])


def distillation_loss(made: HFModel, logits: torch.Tensor, teacher: torch.Tensor,
                      batch: Batch) -> torch.Tensor:
    """``KL(teacher ‖ model)`` of the output distributions, averaged over the predicted tokens of a
    decoder's batch or over a classifier's examples."""
    if made.family == "decoder":
        counted = predicted(batch[1])
        logits, teacher = logits[:, :-1][counted], teacher[:, :-1][counted]
    return torch.nn.functional.kl_div(torch.log_softmax(logits, dim=-1), torch.log_softmax(teacher, dim=-1),
                                      log_target=True, reduction="batchmean")


def initial_thresholds(made: HFModel, batches: list[Batch], quantile: float) -> np.ndarray:
    """``[layers, heads]``: each head's ``quantile`` quantile of its visible scaled scores."""
    seen: dict[int, list[np.ndarray]] = {}

    def core(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
             causal: bool = False) -> torch.Tensor:
        visible = visible_pairs(valid, causal)[:, 0]
        scores = scaled_scores(q, k).transpose(0, 1)[:, visible].double().numpy()
        seen.setdefault(layer, []).append(scores)
        return dense_core(layer, q, k, v, valid, causal)

    for batch in batches:
        run_hooked(made, core, batch)
    return np.stack([np.quantile(np.concatenate(seen[layer], axis=1), quantile, axis=1)
                     for layer in range(made.layers)])


def train_model(made: HFModel, training: list[Batch], calibration: list[Batch], settings: ModelTrainSettings,
                progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Train ``made`` in place (see the module docstring) on ``training`` batches; returns ``θ``
    (``[layers, heads]``, in units of ``scaling·q·k``; ``None`` for the dense control) and the log."""
    settings.check()
    torch.manual_seed(settings.seed)
    model = made.model
    weights = [parameter for parameter in model.parameters() if parameter.requires_grad]
    thresholds = Thresholds(made.layers, made.heads)
    groups = [{"params": weights, "lr": settings.lr}]
    if settings.prune:
        groups.append({"params": [thresholds.theta], "lr": settings.theta_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    thresholding = settings.finetune_steps
    total = thresholding + settings.soft_steps + settings.hard_steps
    order = _batch_order(len(training), total, settings.seed)
    teacher = None
    log: list[dict[str, Any]] = []
    for step in range(total):
        if step == thresholding:
            teacher = _start_thresholds(made, calibration, settings, thresholds, progress)
        phase = _phase(step, settings)
        optimizer.param_groups[0]["lr"] = _weights_lr(step, settings)
        core = _core(phase, step, settings, thresholds)
        batch = training[order[step]]
        model.train()
        with AttentionHook(model, core):
            logits = forward(made, batch)
        task = task_loss(made, logits, batch)
        pruning = settings.prune and phase != "finetune"
        loss = task + settings.lam * core.mask_mean() if pruning and phase == "soft" else task
        if teacher is not None:
            with torch.no_grad():
                taught = forward(teacher, batch)
            divergence = distillation_loss(made, logits, taught, batch)
            loss = loss + settings.distill * divergence
        optimizer.zero_grad()
        loss.backward()
        if phase != "soft":
            thresholds.theta.grad = None
        torch.nn.utils.clip_grad_norm_(weights, 1.0)
        optimizer.step()
        entry = {"step": step, "phase": phase, "loss": round(float(task.detach()), 6)}
        if pruning:
            entry["kept"] = round(float(core.mask_mean().detach()), 6)
        if teacher is not None:
            entry["distillation"] = round(float(divergence.detach()), 6)
        log.append(entry)
        if step % 10 == 0 or step == total - 1:
            kept = f", keep-mask mean {entry['kept']:.3f}" if "kept" in entry else ""
            progress(f"step {step + 1}/{total} ({phase}): loss {entry['loss']:.4f}{kept}")
    model.eval()
    theta = thresholds.theta.detach().double().numpy() if settings.prune else None
    return {"theta": theta, "log": log, "settings": asdict(settings)}


def _phase(step: int, settings: ModelTrainSettings) -> str:
    if step < settings.finetune_steps:
        return "finetune"
    return "soft" if step < settings.finetune_steps + settings.soft_steps else "hard"


def _weights_lr(step: int, settings: ModelTrainSettings) -> float:
    """The weights' learning rate at ``step``: warming up over the first tenth of the fine-tune, then
    ``lr``, falling linearly to 0 over the hard phase."""
    warmup = max(1, settings.finetune_steps // 10)
    if step < settings.finetune_steps:
        return settings.lr * min(1.0, (step + 1) / warmup)
    hard = step - settings.finetune_steps - settings.soft_steps
    return settings.lr if hard < 0 else settings.lr * (1 - hard / settings.hard_steps)


def _core(phase: str, step: int, settings: ModelTrainSettings, thresholds: Thresholds) -> Any:
    """The attention core of a step: dense while fine-tuning and for the dense control, else the soft
    mask at the step's temperature or the hard mask."""
    if phase == "finetune" or not settings.prune:
        return dense_core
    soft_step = step - settings.finetune_steps
    cooling = settings.temperature_end / settings.temperature_start
    temperature = settings.temperature_start * cooling ** (soft_step / max(settings.soft_steps - 1, 1))
    return PrunedCore(thresholds, soft=phase == "soft", temperature=temperature)


def _start_thresholds(made: HFModel, calibration: list[Batch], settings: ModelTrainSettings,
                      thresholds: Thresholds, progress: Callable[[str], None]) -> HFModel | None:
    """At the end of the fine-tune: ``θ`` at its starting quantiles, and the distillation's teacher (a
    frozen copy of the model as fine-tuned), if any."""
    made.model.eval()
    if settings.prune:
        progress(f"thresholds start at the {settings.init_quantile:g} quantile of each head's scores")
        start = initial_thresholds(made, calibration, settings.init_quantile)
        thresholds.theta.data = torch.from_numpy(start).float()
    return replace(made, model=copy.deepcopy(made.model).eval()) if settings.distill else None


def _batch_order(batches: int, steps: int, seed: int) -> list[int]:
    """Which training batch each step takes: passes over them in ``default_rng([seed, pass])`` order."""
    if batches < 1:
        raise LeopardError("no training batch: use more training sentences or a smaller --batch-size")
    order: list[int] = []
    for number in range(math.ceil(steps / batches)):
        order.extend(np.random.default_rng([seed, number]).permutation(batches).tolist())
    return order[:steps]
