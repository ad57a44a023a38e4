"""Real attention traces: run the exported model, as the engine computes it, on held-out sentences and
keep every (sentence, layer, head) attention problem in the trace format (``model/reference/trace.py``).

Sentences: the test split of the export's data settings, permuted with ``default_rng(seed)``; the first
``count`` are taken, in that order. They run through the quantized, hard-pruned model in batches of
``BATCH`` (every batch padded to the longest chosen sentence);
problem ``p = (sentence·layers + layer)·heads + head`` holds that head's integer ``q``, ``k``, ``v``,
padded with zeros to the longest chosen sentence, ``valid_len`` its token count (``[CLS]`` and ``[SEP]``
included), the exported ``θ_int`` and ``scale`` of its (layer, head).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leopard.hw.errors import LeopardError
from leopard.model.reference.trace import Trace
from leopard.model.training.data import Examples, pad
from leopard.model.training.export import Export


@dataclass(frozen=True)
class RealTrace:
    """A trace, the per-problem outputs the model computed, and which test sentences it holds."""

    trace: Trace
    out: np.ndarray
    sentences: np.ndarray
    predictions: np.ndarray


BATCH = 64
"""Sentences run through the model at once: bounds the capture's memory (the golden model's pair arrays
of a batch) on traces of the whole test set."""


def pick(examples: Examples, count: int, seed: int, *, option: str = "--sentences",
         what: str = "test sentences") -> np.ndarray:
    """Indices of ``count`` of ``examples``: the first of ``default_rng(seed).permutation``; a one-line
    error naming ``option`` when there are not that many ``what``."""
    if not 1 <= count <= len(examples):
        raise LeopardError(f"{option} must be in [1, {len(examples)}] ({what}), got {count}")
    return np.random.default_rng(seed).permutation(len(examples))[:count]


def int_dtype(bits: int) -> type[np.signedinteger]:
    """The narrowest NumPy signed integer type holding ``bits``-bit two's complement values."""
    return np.int8 if bits <= 8 else np.int16


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of a file's sha256 (names an export inside a trace's ``source``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def capture(
    export: Export, examples: Examples, chosen: np.ndarray, source: str
) -> RealTrace:
    """The attention problems of the sentences ``chosen`` (see the module docstring)."""
    ids = export.text_tokenizer().encode([examples.texts[i] for i in chosen])
    longest = max(len(row) for row in ids)
    if longest > export.config.max_seq_len:
        raise LeopardError(f"a sentence has {longest} tokens, over the config's max_seq_len")
    tokens, valid = pad(ids)
    classifier, quant = export.classifier(), export.quantization()
    layers, heads = export.threshold.shape
    cfg = export.config
    dtypes = {"q": int_dtype(cfg.q_bits), "k": int_dtype(cfg.k_bits), "v": int_dtype(cfg.v_bits),
              "out": np.int64}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in dtypes}
    predictions = []
    for start in range(0, len(chosen), BATCH):
        core = export.hardware_core(capture=True)
        batch = slice(start, start + BATCH)
        with torch.no_grad():
            predictions.append(classifier(tokens[batch], valid[batch], core).argmax(dim=-1).numpy())
        for name, dtype in dtypes.items():
            # [sentences, layers, heads, N, D] flattened to [P, N, D]
            parts[name].append(np.stack([getattr(c, name) for c in core.captured], axis=1).reshape(
                -1, tokens.shape[1], export.bert.head_dim).astype(dtype))

    def stack(name: str) -> np.ndarray:
        return np.concatenate(parts[name])

    count = len(chosen)
    trace = Trace(
        config=cfg, q=stack("q"), k=stack("k"), v=stack("v"),
        valid_len=np.repeat(valid.sum(dim=1).numpy().astype(np.int32), layers * heads),
        causal=False,
        threshold=np.tile(export.threshold_int.ravel(), count),
        scale=np.tile(quant.score_scale().ravel(), count),
        layer=np.tile(np.repeat(np.arange(layers, dtype=np.int32), heads), count),
        head=np.tile(np.arange(heads, dtype=np.int32), count * layers),
        source=source,
    )
    return RealTrace(trace, stack("out"), np.asarray(chosen), np.concatenate(predictions))
