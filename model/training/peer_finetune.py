"""Training under a keep policy: the weights fine-tuned with the policy's hard mask, as leopard's hard
phase trains them under its thresholds, so a peer is compared with weights that have adapted to it too.

``steps`` AdamW steps on the training sentences (the export's batch size, seed and learning rate, the
rate falling linearly to 0 as in the hard phase); attention in float, ``softmax`` over the pairs the
policy keeps, decided on the engine's integers without a gradient (``MaskedCore``); then the export's
own quantization calibrated again on the new weights (``train.requantize``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from leopard.model.reference.policies import Policy
from leopard.model.training import export
from leopard.model.training.data import Dataset, pad
from leopard.model.training.pruned_attention import masked_probabilities, scaled_scores
from leopard.model.training.quantize import HardwareCore
from leopard.model.training.train import batch_indices, requantize, settings_of

PROGRESS_EVERY = 25


@dataclass
class MaskedCore:
    """Float attention over the pairs ``policy`` keeps on ``engine``'s integers (one batch: ``state``
    is the policy's memory across its layers)."""

    engine: HardwareCore
    policy: Policy
    state: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        batch, heads, length, _ = q.shape
        problems = self.engine.problems(layer, q.detach(), k.detach(), v.detach(), valid)
        attended = self.policy.attend(self.engine.cfg, layer, problems, heads, self.state)
        keep = torch.from_numpy(attended.kept.reshape(batch, heads, length, length)).to(q.dtype)
        probs = masked_probabilities(scaled_scores(q, k), keep, valid, hard=True)
        context = probs @ v
        fixed = probs.detach().double().numpy() * 2.0 ** self.engine.cfg.prob_frac_bits
        self.policy.observe(layer, fixed, context.detach().numpy(), self.state)
        return context


def finetune(made: export.Export, dataset: Dataset, policy: Policy, steps: int,
             progress: Callable[[str], None]) -> export.Export:
    """``made`` with its weights fine-tuned ``steps`` steps under ``policy`` and its scales calibrated
    again (thresholds unchanged)."""
    settings = settings_of(made)
    torch.manual_seed(settings.seed)
    model = made.classifier().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    engine = made.hardware_core(prune=False)
    ids = made.text_tokenizer().encode(dataset.train.texts)
    for step in range(steps):
        chosen = batch_indices(settings, len(ids), step)
        tokens, valid = pad([ids[i] for i in chosen])
        labels = torch.from_numpy(dataset.train.labels[chosen])
        optimizer.param_groups[0]["lr"] = settings.lr * (steps - step) / steps
        loss = torch.nn.functional.cross_entropy(model(tokens, valid, MaskedCore(engine, policy)), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == steps:
            progress(f"compare: fine-tuning {policy.name}: step {step + 1}/{steps}, loss {loss.item():.3f}")
    tuned = dataclasses.replace(made, weights=export.round_weights(model.eval(), settings.weights_dtype))
    return requantize(tuned, dataset, settings.quant())
