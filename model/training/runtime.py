"""What the training stack needs before it imports torch: its packages (the ``train`` extra), offline
hubs, and the thread count."""

from __future__ import annotations

import importlib.util
import os

from leopard.hw.errors import LeopardError

PACKAGES = ("torch", "safetensors", "tokenizers", "tqdm", "matplotlib")


def torch_ready(threads: int | None = None) -> None:
    """Check the training packages (a one-line error naming a missing one), keep hubs offline, import
    torch with ``threads`` when given."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for package in PACKAGES:
        if importlib.util.find_spec(package) is None:
            raise LeopardError(f"the package {package} is not installed; run `make setup`")
    import torch

    if threads is not None:
        if threads < 1:
            raise LeopardError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
