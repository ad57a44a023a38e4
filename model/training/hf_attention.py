"""Leopard's attention inside any Hugging Face ``transformers`` model that runs with eager attention.

``AttentionHook`` registers an attention function under the name ``leopard`` with ``transformers``'
``AttentionInterface`` (and the eager mask under the same name with ``AttentionMaskInterface``) and
switches the model to it. Every attention layer then hands its query, key and value, as the model
computed them (after its projections, rotary embeddings and key/value sharing), to a leopard attention
core ``core(layer, q, k, v, valid, causal=...) -> context``, the interface of the project's own BERT
(``bert.AttentionCore``) with the mask's kind added:

- ``layer``: the attention calls numbered in the order of a forward pass of the model (a model that
  shares one attention module between its layers, as ALBERT does, gets one number per call);
- ``q`` ``[B, H, N, Dh]``, multiplied by ``scaling·√Dh`` so that the core's ``q·k/√Dh`` is the
  model's own ``scaling·q·k``;
- ``k``, ``v`` ``[B, H, N, Dh]``: with grouped-query attention each key/value head repeated for the
  ``H / H_kv`` query heads it serves (``kv_head_of``);
- ``valid`` ``[B, N]``: each row's real tokens, a prefix (right padding); ``causal``: query ``i``
  sees keys ``j ≤ i`` only.

The model's mask must be one of the two patterns the engine runs (padding, or causal with padding);
anything else (left padding, a sliding window, a key/value cache) is a one-line error. Attention
dropout is not applied, in training either: the engine has none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch

from leopard.hw.errors import LeopardError
from leopard.model.training.pruned_attention import visible_pairs

HOOK = "leopard"
"""The attention implementation's name inside ``transformers``."""

HookedCore = Callable[..., torch.Tensor]
"""``core(layer, q, k, v, valid, causal=False) -> context`` (see the module docstring)."""


def kv_head_of(heads: int, kv_heads: int) -> list[int]:
    """The key/value head each query head reads: ``h // (heads / kv_heads)`` (``transformers``'
    ``repeat_kv``)."""
    if kv_heads < 1 or heads % kv_heads:
        raise LeopardError(f"{heads} attention heads cannot share {kv_heads} key/value heads evenly")
    return [head // (heads // kv_heads) for head in range(heads)]


def visibility(mask: torch.Tensor | None, batch: int, length: int) -> tuple[torch.Tensor, bool]:
    """``(valid, causal)`` of a ``transformers`` attention mask (``None``: every token sees every
    other; bool: True sees; float: 0 sees), or a one-line error when it is neither padding nor causal
    with padding, or pads on the left."""
    if mask is None:
        return torch.ones((batch, length), dtype=torch.bool), False
    seen = (mask if mask.dtype == torch.bool else mask == 0)[:, 0].expand(batch, length, length)
    valid = seen.any(dim=1)
    prefix = torch.arange(length)[None, :] < valid.sum(dim=1, keepdim=True)
    if not torch.equal(valid, prefix):
        raise LeopardError("the model's inputs are padded on the left; the engine needs each sequence's "
                           "tokens first (pad on the right)")
    rows = seen & valid[:, :, None]
    if torch.equal(rows, visible_pairs(valid)[:, 0]):
        return valid, False
    if torch.equal(rows, visible_pairs(valid, causal=True)[:, 0]):
        return valid, True
    raise LeopardError("the model's attention mask is neither padding nor causal with padding "
                       "(a sliding window or a custom mask?); the engine runs only those two")


class AttentionHook:
    """``with AttentionHook(model, core):`` runs ``model``'s attention through ``core`` (see the module
    docstring); the model's own attention implementation is restored on leaving. One hook is active at
    a time (the name is registered globally)."""

    def __init__(self, model: Any, core: HookedCore) -> None:
        if not getattr(model, "_supports_attention_backend", False):
            raise LeopardError(
                f"{type(model).__name__} does not call transformers' attention interface, so its "
                "attention cannot be hooked; use a model that runs with attn_implementation='eager' "
                "through that interface (Llama, BERT, ViT and most recent architectures)"
            )
        self.model = model
        self.core = core
        self.layers = 0
        """Attention calls so far in the current (or last) forward pass of the model."""
        self.causal = False
        """Whether the layers' mask was causal (every layer's must be the same kind)."""
        self._previous: str | None = None
        self._pass: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> AttentionHook:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionInterface.register(HOOK, self._attend)
        AttentionMaskInterface.register(HOOK, eager_mask)
        self._previous = self.model.config._attn_implementation
        self.model.set_attn_implementation(HOOK)
        self._pass = self.model.register_forward_pre_hook(self._new_pass)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.model.set_attn_implementation(self._previous or "eager")
        if self._pass is not None:
            self._pass.remove()

    def _new_pass(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self.layers = 0

    def _attend(self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                **kwargs: Any) -> tuple[torch.Tensor, None]:
        batch, heads, length, dim = query.shape
        if key.shape[-2] != length:
            raise LeopardError("the model attends to cached keys; run whole sequences (use_cache=False)")
        layer = self.layers
        self.layers += 1
        groups = heads // key.shape[1]
        if groups > 1:
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        valid, causal = visibility(attention_mask, batch, length)
        if layer and causal != self.causal:
            raise LeopardError("the model mixes causal and bidirectional attention layers; the engine runs "
                               "one kind per trace")
        self.causal = causal
        factor = (dim ** -0.5 if scaling is None else scaling) * math.sqrt(dim)
        context = self.core(layer, query * factor, key, value, valid, causal=causal)
        return context.transpose(1, 2).contiguous(), None
