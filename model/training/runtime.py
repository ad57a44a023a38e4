"""What the training stack needs before it imports torch: its packages (the ``train`` extra), offline
hubs, and the thread count."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

from leopard.hw.errors import LeopardError

PACKAGES = ("torch", "safetensors", "tokenizers", "tqdm", "matplotlib", "transformers", "gguf",
            "accelerate")


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


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads, the process's own count restored after: a point run
    on any worker computes with the same count, so its results do not depend on where it ran."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
