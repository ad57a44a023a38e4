"""Real attention traces of any ``transformers`` text model before training: the engine's arithmetic
inside the model through the hooked attention (``hf_attention.py``), one quantile threshold per head.

Sentences (chosen by the caller: ``leopard trace-model`` takes the first of ``default_rng(seed)``
permutations of the data's training split for calibration and of its test split for the trace) are
tokenized by the model's own tokenizer, truncated to ``max_tokens``, padded on the right and run
``BATCH`` at a time.

1. Scales: the dense float model on the calibration sentences (``quantize.calibrate_with``). With
   grouped-query attention the query heads of a group see the same keys, so their key scales are equal
   and their integer keys identical.
2. Thresholds: each (layer, head)'s ``θ_int`` is the ``prune`` quantile (inverted CDF) of its visible
   integer scores on the calibration sentences, so about that share of them falls below it; ``θ`` is
   ``θ_int · scale``.
3. Trace: the test sentences through the engine's arithmetic (``HardwareCore``: integer ``q``, ``k``,
   ``v``, the decision ``s_int ≥ θ_int``, the fixed-point softmax, hard-pruned); problem
   ``p = (sentence·layers + layer)·heads + head``, ``kv_group`` the key/value head it reads,
   ``(sentence·layers + layer)·kv_heads + h // (heads / kv_heads)``; causal for a decoder.
4. A decoder's next-token accuracy and perplexity over the test sentences' tokens, with its own float
   attention and through the engine, with 95 % intervals and the paired differences (bootstrap over
   sentences).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.model.reference import confidence, golden
from leopard.model.reference.trace import Trace
from leopard.model.training import quantize
from leopard.model.training.capture import int_dtype
from leopard.model.training.hf_attention import AttentionHook, kv_head_of
from leopard.model.training.hf_models import HFModel, ModelSource

BATCH = 16
"""Sentences run through the model at once."""


@dataclass(frozen=True)
class ModelTrace:
    """The trace, its thresholds and scales, the share of visible scores pruned, and the language
    model's figures (decoders only)."""

    trace: Trace
    threshold: np.ndarray
    quant: quantize.Quantization
    pruned: float
    language_model: dict[str, Any] | None


def batches(made: HFModel, texts: list[str], max_tokens: int,
            size: int = BATCH) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(ids, valid)`` of ``size`` texts at a time, padded on the right, at most ``max_tokens``
    tokens each."""
    for start in range(0, len(texts), size):
        encoded = made.tokenizer(texts[start:start + size], padding=True, truncation=True,
                                 max_length=max_tokens, return_tensors="pt")
        yield encoded["input_ids"], encoded["attention_mask"].bool()


def forward(model: Any, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The model's first output (logits or hidden states) on whole right-padded sequences."""
    return model(input_ids=ids, attention_mask=valid.long(), use_cache=False)[0]


def run_hooked(made: HFModel, core: Callable[..., torch.Tensor], ids: torch.Tensor,
               valid: torch.Tensor) -> tuple[torch.Tensor, AttentionHook]:
    """``forward`` with the model's attention run by ``core``, without gradients."""
    with torch.no_grad(), AttentionHook(made.model, core) as hook:
        out = forward(made.model, ids, valid)
    return out, hook


def check_config(made: HFModel | ModelSource, cfg: EngineConfig, max_tokens: int) -> None:
    """A one-line error when the engine config cannot hold the model's heads or sentences."""
    if made.family == "vision":
        raise LeopardError(f"{made.name} is a vision model; traces of text need a text model")
    if cfg.head_dim != made.head_dim:
        raise LeopardError(f"{made.name} has head dim {made.head_dim}, the engine config {cfg.head_dim}; "
                           f"pass a config with head_dim {made.head_dim} (--preset smollm2 for 64)")
    if max_tokens > cfg.max_seq_len:
        raise LeopardError(f"--max-tokens {max_tokens} is over the config's max_seq_len {cfg.max_seq_len}")


def quantile_thresholds(made: HFModel, calibration: list[tuple[torch.Tensor, torch.Tensor]],
                        cfg: EngineConfig, quant: quantize.Quantization, prune: float) -> np.ndarray:
    """``[layers, heads]`` ``θ_int``: the ``prune`` quantile of each head's visible integer scores on
    the ``calibration`` batches."""
    scores: list[list[list[np.ndarray]]] = [[[] for _ in range(made.heads)] for _ in range(made.layers)]
    floor = np.full((made.layers, made.heads), cfg.threshold_min, np.int64)
    for ids, valid in calibration:
        core = quantize.HardwareCore(cfg, quant, theta=np.zeros(floor.shape), threshold=floor,
                                     prune=False, capture=True)
        _, hook = run_hooked(made, core, ids, valid)
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


def rates(counts: np.ndarray, seed: int) -> dict[str, Any]:
    """Next-token accuracy (percent) and perplexity of ``next_token_counts`` rows, with intervals."""
    tokens = counts[:, 2]
    return {"next_token_accuracy": confidence.ratio(counts[:, 0], tokens, seed, lambda rate: 100.0 * rate),
            "perplexity": confidence.ratio(counts[:, 1], tokens, seed, np.exp)}


def changes(counts: np.ndarray, reference: np.ndarray, seed: int) -> dict[str, Any]:
    """``counts``' accuracy change (points) and perplexity change (percent) against ``reference`` on
    the same tokens, with paired intervals."""
    tokens = counts[:, 2]
    return {
        "accuracy_change": confidence.ratio_difference(
            counts[:, 0], reference[:, 0], tokens, seed, lambda rate, base: 100.0 * (rate - base)),
        "perplexity_change_percent": confidence.ratio_difference(
            counts[:, 1], reference[:, 1], tokens, seed, lambda nll, base: 100.0 * np.expm1(nll - base)),
    }


def language_model_figures(dense: np.ndarray, engine: np.ndarray, seed: int,
                           control: np.ndarray | None = None) -> dict[str, Any]:
    """Next-token accuracy (percent) and perplexity, dense and through the engine, with intervals;
    with ``control`` also its own figures and the engine's paired differences against them."""
    own, through = rates(dense, seed), rates(engine, seed)
    figures = {
        "tokens": int(dense[:, 2].sum()),
        **{name: {"dense": own[name], "engine": through[name]} for name in own},
        **changes(engine, dense, seed),
    }
    if control is not None:
        figures["dense_control"] = {**rates(control, seed), **changes(engine, control, seed)}
    return figures


def model_trace(made: HFModel, cfg: EngineConfig, calibration: list[str], test: list[str], prune: float,
                settings: quantize.QuantSettings, seed: int, source: str, max_tokens: int = 64,
                progress: Callable[[str], None] = lambda message: None, theta: np.ndarray | None = None,
                control: HFModel | None = None) -> ModelTrace:
    """The trace of ``test`` (see the module docstring); ``seed`` seeds the intervals. ``theta``
    (``[layers, heads]``, learned, in units of ``scaling·q·k``) replaces the quantile thresholds;
    ``control`` (a decoder with the same tokenizer, e.g. the dense control of the training) adds the
    paired differences against its own float attention on the same tokens."""
    check_config(made, cfg, max_tokens)
    settings.check(made.head_dim)

    calibrating = list(batches(made, calibration, max_tokens))
    tested = list(batches(made, test, max_tokens))

    def run_dense(core: Callable[..., torch.Tensor]) -> None:
        for ids, valid in calibrating:
            run_hooked(made, core, ids, valid)

    progress(f"calibrating scales on {len(calibration)} sentences")
    quant = quantize.calibrate_with(run_dense, cfg, settings)
    if theta is None:
        progress(f"thresholds at the {prune:g} quantile of each head's scores")
        threshold = quantile_thresholds(made, calibrating, cfg, quant, prune)
    elif theta.shape != (made.layers, made.heads):
        raise LeopardError(f"the thresholds have shape {list(theta.shape)}, the model "
                           f"[{made.layers}, {made.heads}] (layers, heads)")
    else:
        threshold = quantize.threshold_int(theta, quant.score_scale(), cfg)
    longest = max(int(valid.sum(dim=1).max()) for _, valid in tested)
    parts: dict[str, list[np.ndarray]] = {}
    kept = pairs = 0
    causal = False
    for number, (ids, valid) in enumerate(tested):
        first = number * BATCH
        progress(f"sentences {first + 1}-{first + len(ids)} of {len(test)} through the engine")
        core = quantize.HardwareCore(cfg, quant, theta=threshold * quant.score_scale(), threshold=threshold,
                                     capture=True)
        logits, hook = run_hooked(made, core, ids, valid)
        causal = hook.causal
        kept, pairs = kept + int(core.stats.kept.sum()), pairs + int(core.stats.pairs.sum())
        for name, value in batch_fields(made, cfg, core.captured, first, longest).items():
            parts.setdefault(name, []).append(value)
        if made.family == "decoder":
            parts.setdefault("engine", []).append(next_token_counts(logits, ids, valid))
            references = {"dense": made} if control is None else {"dense": made, "control": control}
            for name, reference in references.items():
                with torch.no_grad():
                    parts.setdefault(name, []).append(next_token_counts(forward(reference.model, ids, valid),
                                                                        ids, valid))
    joined = {name: np.concatenate(values) for name, values in parts.items()}
    count = len(test)
    trace = Trace(
        config=cfg, q=joined["q"], k=joined["k"], v=joined["v"], valid_len=joined["valid_len"], causal=causal,
        threshold=np.tile(threshold.ravel(), count), scale=np.tile(quant.score_scale().ravel(), count),
        layer=np.tile(np.repeat(np.arange(made.layers, dtype=np.int32), made.heads), count),
        head=np.tile(np.arange(made.heads, dtype=np.int32), count * made.layers),
        kv_group=joined["kv_group"] if made.kv_heads < made.heads else None, source=source,
    )
    figures = None
    if "dense" in joined:
        figures = language_model_figures(joined["dense"], joined["engine"], seed, joined.get("control"))
    return ModelTrace(trace, threshold, quant, 1.0 - kept / max(pairs, 1), figures)


def batch_fields(made: HFModel, cfg: EngineConfig, captured: list[quantize.Captured], first: int,
                 longest: int) -> dict[str, np.ndarray]:
    """One batch's trace fields (``q``, ``k``, ``v`` padded to ``longest`` tokens, ``valid_len``,
    ``kv_group``), its sentences numbered from ``first``, problems ordered (sentence, layer, head)."""
    fields = {}
    for name in ("q", "k", "v"):
        stacked = np.stack([getattr(layer, name) for layer in captured], axis=1)
        sentences, length = stacked.shape[0], stacked.shape[3]
        dtype = int_dtype(getattr(cfg, f"{name}_bits"))
        padded = np.zeros((*stacked.shape[:3], longest, made.head_dim), dtype)
        padded[:, :, :, :length] = stacked
        fields[name] = padded.reshape(-1, longest, made.head_dim)
    fields["valid_len"] = np.repeat(captured[0].valid_len.astype(np.int32), made.layers * made.heads)
    kv_head = np.array(kv_head_of(made.heads, made.kv_heads))
    sentence = first + np.arange(sentences)[:, None, None]
    layer = np.arange(made.layers)[None, :, None]
    group = (sentence * made.layers + layer) * made.kv_heads + kv_head
    fields["kv_group"] = group.reshape(-1).astype(np.int32)
    return fields


def describe(made: HFModel) -> dict[str, Any]:
    """The model's family and attention shape, for reports."""
    return {"model": made.name, "family": made.family, "layers": made.layers, "heads": made.heads,
            "kv_heads": made.kv_heads, "head_dim": made.head_dim}


def language_model_table(figures: dict[str, Any]) -> str:
    """The language model's figures as a text table, values with their intervals."""

    def cell(entry: dict[str, Any]) -> str:
        low, high = entry["ci95"]
        return f"{entry['value']:.2f} [{low:.2f}, {high:.2f}]"

    rows = [("next-token accuracy, own attention (%)", cell(figures["next_token_accuracy"]["dense"])),
            ("next-token accuracy, engine (%)", cell(figures["next_token_accuracy"]["engine"])),
            ("change (points)", cell(figures["accuracy_change"])),
            ("perplexity, own attention", cell(figures["perplexity"]["dense"])),
            ("perplexity, engine", cell(figures["perplexity"]["engine"])),
            ("perplexity change (%)", cell(figures["perplexity_change_percent"]))]
    if "dense_control" in figures:
        control = figures["dense_control"]
        rows += [("next-token accuracy, dense control (%)", cell(control["next_token_accuracy"])),
                 ("change against it (points)", cell(control["accuracy_change"])),
                 ("perplexity, dense control", cell(control["perplexity"])),
                 ("perplexity change against it (%)", cell(control["perplexity_change_percent"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows) + f"\n({figures['tokens']} tokens)"
