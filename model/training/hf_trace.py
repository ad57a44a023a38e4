"""Real attention traces of any ``transformers`` model: the engine's arithmetic inside the model through
the hooked attention (``hf_attention.py``), one quantile threshold per head or learned ones.

Examples come in batches (``Batch``), chosen by the caller (``leopard trace-model`` takes the first of
``default_rng(seed)`` permutations of the data's training split for calibration and of its test split for
the trace): sentences tokenized by the model's own tokenizer, truncated to ``max_tokens`` and padded on
the right, ``BATCH`` at a time (``batches``); or images (``images.batches``).

1. Scales: the dense float model on the calibration batches (``quantize.calibrate_with``). With
   grouped-query attention the query heads of a group see the same keys, so their key scales are equal
   and their integer keys identical.
2. Thresholds: each (layer, head)'s ``θ_int`` is the ``prune`` quantile (inverted CDF) of its visible
   integer scores on the calibration batches, so about that share of them falls below it; ``θ`` is
   ``θ_int · scale``.
3. Trace: the test examples through the engine's arithmetic (``HardwareCore``: integer ``q``, ``k``,
   ``v``, the decision ``s_int ≥ θ_int``, the fixed-point softmax, hard-pruned); problem
   ``p = (example·layers + layer)·heads + head``, ``kv_group`` the key/value head it reads,
   ``(example·layers + layer)·kv_heads + h // (heads / kv_heads)``; causal for a decoder.
4. A decoder's next-token accuracy and perplexity, or a classifier's (an encoder's sequence classifier
   or a vision model's) accuracy and loss, with its own
   float attention and through the engine, with 95 % intervals and the paired differences
   (``hf_figures.py``), over the test examples and any further ones evaluated but not traced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model.reference import golden
from leopard.model.reference.trace import Trace
from leopard.model.training import hf_figures, quantize
from leopard.model.training.capture import int_dtype
from leopard.model.training.hf_attention import AttentionHook, kv_head_of
from leopard.model.training.hf_models import HFModel, ModelSource

BATCH = 16
"""Sentences run through the model at once."""

Batch = tuple[torch.Tensor, ...]
"""``(ids, valid)`` of right-padded sentences, ``(ids, valid, labels)`` of labelled ones (an encoder
classifier's), or ``(pixel_values, labels)`` of images: a classifier's labels come last."""


@dataclass(frozen=True)
class ModelTrace:
    """The trace (``None`` when no batch was traced), its thresholds and scales, the share of visible
    scores pruned in it and in every example run (``pruned_run``: traced and evaluated), the share of its
    (query, layer, head) rows whose every visible key is pruned (``all_pruned``: the engine outputs zero
    for them), and the task's figures (``hf_figures.task_figures``; ``None`` for a bare encoder, which
    has no task)."""

    trace: Trace | None
    threshold: np.ndarray
    quant: quantize.Quantization
    pruned: float
    pruned_run: float
    all_pruned: float
    figures: dict[str, Any] | None


def batches(made: HFModel, texts: list[str], max_tokens: int, size: int = BATCH,
            labels: np.ndarray | None = None) -> Iterator[Batch]:
    """``(ids, valid)`` of ``size`` texts at a time, padded on the right, at most ``max_tokens``
    tokens each; with ``labels`` (one class index per text), ``(ids, valid, labels)``."""
    for start in range(0, len(texts), size):
        encoded = made.tokenizer(texts[start:start + size], padding=True, truncation=True,
                                 max_length=max_tokens, return_tensors="pt")
        batch: Batch = (encoded["input_ids"], encoded["attention_mask"].bool())
        if labels is not None:
            batch = (*batch, torch.from_numpy(np.asarray(labels[start:start + size], np.int64)))
        yield batch


def forward(made: HFModel, batch: Batch) -> torch.Tensor:
    """The model's first output (logits or hidden states) on a batch of whole right-padded sentences
    or of images."""
    if made.family == "vision":
        return made.model(pixel_values=batch[0])[0]
    return made.model(input_ids=batch[0], attention_mask=batch[1].long(), use_cache=False)[0]


def run_hooked(made: HFModel, core: Callable[..., torch.Tensor],
               batch: Batch) -> tuple[torch.Tensor, AttentionHook]:
    """``forward`` with the model's attention run by ``core``, without gradients."""
    with torch.no_grad(), AttentionHook(made.model, core) as hook:
        out = forward(made, batch)
    return out, hook


def tokens_of(made: HFModel, batch: Batch) -> int:
    """The most tokens a sequence of ``batch`` has: its longest sentence, or an image's patches and
    CLS token."""
    if made.family == "vision":
        return image_tokens(made.model.config)
    return int(batch[1].sum(dim=1).max())


def image_tokens(config: Any) -> int:
    """Tokens per image of a vision transformer: ``(image_size / patch_size)²`` patches and the CLS."""
    return (config.image_size // config.patch_size) ** 2 + 1


def check_config(made: HFModel | ModelSource, cfg: EngineConfig, max_tokens: int) -> None:
    """A one-line error when the engine config cannot hold the model's heads or sequences
    (``max_tokens`` per sentence; a vision model's own token count)."""
    if cfg.head_dim != made.head_dim:
        raise LeopardError(f"{made.name} has head dim {made.head_dim}, the engine config {cfg.head_dim}; "
                           f"pass a config with head_dim {made.head_dim} (--preset smollm2 for 64)")
    if made.family == "vision":
        tokens = image_tokens(made.model.config if isinstance(made, HFModel) else made.config)
        if tokens > cfg.max_seq_len:
            raise LeopardError(f"{made.name} has {tokens} tokens per image, over the config's max_seq_len "
                               f"{cfg.max_seq_len}; pass a config with a larger max_seq_len")
    elif max_tokens > cfg.max_seq_len:
        raise LeopardError(f"--max-tokens {max_tokens} is over the config's max_seq_len {cfg.max_seq_len}")


def quantile_thresholds(made: HFModel, calibration: Sequence[Batch],
                        cfg: EngineConfig, quant: quantize.Quantization, prune: float) -> np.ndarray:
    """``[layers, heads]`` ``θ_int``: the ``prune`` quantile of each head's visible integer scores on
    the ``calibration`` batches."""
    scores: list[list[list[np.ndarray]]] = [[[] for _ in range(made.heads)] for _ in range(made.layers)]
    floor = np.full((made.layers, made.heads), cfg.threshold_min, np.int64)
    for batch in calibration:
        core = quantize.HardwareCore(cfg, quant, theta=np.zeros(floor.shape), threshold=floor,
                                     prune=False, capture=True)
        _, hook = run_hooked(made, core, batch)
        for captured in core.captured:
            attention = golden.Attention(
                q=flat(captured.q), k=flat(captured.k), v=flat(captured.v),
                valid_len=np.repeat(captured.valid_len, made.heads), causal=hook.causal,
                threshold=np.repeat(floor[captured.layer], len(captured.valid_len)),
            )
            visible, score = attention.visible(), golden.scores(attention.q, attention.k)
            for p in range(attention.count):
                scores[captured.layer][p % made.heads].append(score[p][visible[p]])
    threshold = np.full((made.layers, made.heads), cfg.threshold_min, np.int64)
    if prune:
        for layer, head in np.ndindex(threshold.shape):
            values = np.concatenate(scores[layer][head])
            threshold[layer, head] = int(np.quantile(values, prune, method="inverted_cdf"))
    return np.clip(threshold, cfg.threshold_min, cfg.threshold_max)


def flat(values: np.ndarray) -> np.ndarray:
    """``[B, H, N, Dh]`` as ``[B·H, N, Dh]`` (problem ``b·H + h``)."""
    return values.reshape(-1, *values.shape[2:])


def calibrate(made: HFModel, cfg: EngineConfig, calibration: Sequence[Batch],
              settings: quantize.QuantSettings) -> quantize.Quantization:
    """Step 1: the scales, from the dense float model on the ``calibration`` batches."""
    def run_dense(core: Callable[..., torch.Tensor]) -> None:
        for batch in calibration:
            run_hooked(made, core, batch)

    return quantize.calibrate_with(run_dense, cfg, settings)


def model_trace(made: HFModel, cfg: EngineConfig, calibration: Sequence[Batch], test: Sequence[Batch],
                prune: float, settings: quantize.QuantSettings, seed: int, source: str,
                progress: Callable[[str], None] = lambda message: None, theta: np.ndarray | None = None,
                control: HFModel | None = None, evaluated: Sequence[Batch] = (),
                calibrated: quantize.Quantization | None = None) -> ModelTrace:
    """The trace of the ``test`` batches (see the module docstring); ``seed`` seeds the intervals.
    ``theta`` (``[layers, heads]``, learned, in units of ``scaling·q·k``) replaces the quantile
    thresholds; ``control`` (a model of the same family and inputs, e.g. the dense control of the
    training) adds the paired differences against its own float attention on the same examples;
    ``evaluated`` batches count in the figures but not in the trace (with no ``test`` batch, nothing is
    traced); ``calibrated`` (an export's scales, with its ``theta``) replaces step 1, and
    ``calibration`` is then not run."""
    longest = max(tokens_of(made, batch) for batch in (test or evaluated))
    check_config(made, cfg, longest)
    settings.check(made.head_dim)

    quant = calibrated
    if quant is None:
        progress(f"calibrating scales on {sum(len(batch[0]) for batch in calibration)} examples")
        quant = calibrate(made, cfg, calibration, settings)
    if theta is None:
        progress(f"thresholds at the {prune:g} quantile of each head's scores")
        threshold = quantile_thresholds(made, calibration, cfg, quant, prune)
    elif theta.shape != (made.layers, made.heads):
        raise LeopardError(f"the thresholds have shape {list(theta.shape)}, the model "
                           f"[{made.layers}, {made.heads}] (layers, heads)")
    else:
        threshold = quantize.threshold_int(theta, quant.score_scale(), cfg)
    parts: dict[str, list[np.ndarray]] = {}
    kept = pairs = kept_run = pairs_run = queries = empty = 0
    causal = False
    traced = sum(len(batch[0]) for batch in test)
    first, total = 0, traced + sum(len(batch[0]) for batch in evaluated)
    scored = made.task is not None
    for number, batch in enumerate((*test, *evaluated)):
        tracing = number < len(test)
        progress(f"examples {first + 1}-{first + len(batch[0])} of {total} through the engine")
        core = quantize.HardwareCore(cfg, quant, theta=threshold * quant.score_scale(), threshold=threshold,
                                     capture=tracing)
        logits, hook = run_hooked(made, core, batch)
        causal = hook.causal
        kept_run, pairs_run = kept_run + int(core.stats.kept.sum()), pairs_run + int(core.stats.pairs.sum())
        if tracing:
            kept, pairs = kept + int(core.stats.kept.sum()), pairs + int(core.stats.pairs.sum())
            queries, empty = queries + core.queries, empty + core.empty_queries
            for name, value in batch_fields(made, cfg, core.captured, first, longest).items():
                parts.setdefault(name, []).append(value)
        if scored:
            parts.setdefault("engine", []).append(hf_figures.counts(made.family, logits, batch))
            references = {"dense": made} if control is None else {"dense": made, "control": control}
            for name, reference in references.items():
                with torch.no_grad():
                    parts.setdefault(name, []).append(
                        hf_figures.counts(made.family, forward(reference, batch), batch))
        first += len(batch[0])
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    trace = None
    if traced:
        trace = Trace(
            config=cfg, q=joined["q"], k=joined["k"], v=joined["v"], valid_len=joined["valid_len"],
            causal=causal, threshold=np.tile(threshold.ravel(), traced),
            scale=np.tile(quant.score_scale().ravel(), traced),
            layer=np.tile(np.repeat(np.arange(made.layers, dtype=np.int32), made.heads), traced),
            head=np.tile(np.arange(made.heads, dtype=np.int32), traced * made.layers),
            kv_group=joined["kv_group"] if made.kv_heads < made.heads else None, source=source,
        )
    figures = None
    if scored:
        figures = hf_figures.task_figures(made.family, joined["dense"], joined["engine"], seed,
                                          joined.get("control"))
    return ModelTrace(trace, threshold, quant, 1.0 - kept / max(pairs, 1), 1.0 - kept_run / max(pairs_run, 1),
                      empty / max(queries, 1), figures)


def batch_fields(made: HFModel, cfg: EngineConfig, captured: list[quantize.Captured], first: int,
                 longest: int) -> dict[str, np.ndarray]:
    """One batch's trace fields (``q``, ``k``, ``v`` padded to ``longest`` tokens, ``valid_len``,
    ``kv_group``), its examples numbered from ``first``, problems ordered (example, layer, head)."""
    fields = {}
    for name in ("q", "k", "v"):
        stacked = np.stack([getattr(layer, name) for layer in captured], axis=1)
        examples, length = stacked.shape[0], stacked.shape[3]
        dtype = int_dtype(getattr(cfg, f"{name}_bits"))
        padded = np.zeros((*stacked.shape[:3], longest, made.head_dim), dtype)
        padded[:, :, :, :length] = stacked
        fields[name] = padded.reshape(-1, longest, made.head_dim)
    fields["valid_len"] = np.repeat(captured[0].valid_len.astype(np.int32), made.layers * made.heads)
    kv_head = np.array(kv_head_of(made.heads, made.kv_heads))
    example = first + np.arange(examples)[:, None, None]
    layer = np.arange(made.layers)[None, :, None]
    group = (example * made.layers + layer) * made.kv_heads + kv_head
    fields["kv_group"] = group.reshape(-1).astype(np.int32)
    return fields


def describe(made: HFModel) -> dict[str, Any]:
    """The model's family and attention shape, for reports."""
    return {"model": made.name, "family": made.family, "layers": made.layers, "heads": made.heads,
            "kv_heads": made.kv_heads, "head_dim": made.head_dim}
