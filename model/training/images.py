"""Labelled images for the vision family: Fashion-MNIST from the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), or any folder holding the same four
IDX files (MNIST's format: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-…``, each
optionally ``.gz``). The split is the files' own: 60,000 training and 10,000 test images of Fashion-MNIST.
Or a folder of image files in the ``torchvision`` ``ImageFolder`` layout: ``train/<class>/`` and
``test/<class>/`` holding PNG (or JPEG) files of one size, the classes numbered in the sorted order of
their folder names (the same names on both sides), every image read as one grayscale channel.

A model sees an image as one channel of ``pixel / 127.5 − 1`` (``pixel_values``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leopard.hw.errors import LeopardError

FASHION_MNIST = "fashion-mnist"
"""The name of the built-in image set (``--data fashion-mnist``)."""
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SETUP_HINT = "run `make setup` (it installs the Debian package dataset-fashion-mnist)"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@dataclass(frozen=True)
class Images:
    """``pixels`` ``[n, H, W]`` (uint8) and their class ``labels`` ``[n]``."""

    pixels: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, chosen: np.ndarray) -> Images:
        return Images(self.pixels[chosen], self.labels[chosen])


@dataclass(frozen=True)
class ImageSet:
    """The training and test images of one folder, its class count and a digest of its files."""

    name: str
    train: Images
    test: Images
    classes: int
    sha256: str


def folder_of(name: str) -> Path:
    """The folder ``--data`` names: ``fashion-mnist`` (built in) or a folder of IDX files."""
    if name == FASHION_MNIST:
        if not FASHION_MNIST_DIR.is_dir():
            raise LeopardError(f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR}; {SETUP_HINT}")
        return FASHION_MNIST_DIR
    folder = Path(name)
    if not folder.is_dir():
        raise LeopardError(f"--data {name}: not {FASHION_MNIST}, a folder of IDX image files or one of "
                           "train/ and test/ class folders of images")
    return folder


def read_idx(path: Path, dimensions: int) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` or plain) with ``dimensions`` axes, or a one-line error."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise LeopardError(f"{path}: cannot read it ({error})") from None
    if len(raw) < 4 + 4 * dimensions or raw[:3] != b"\0\0\x08" or raw[3] != dimensions:
        raise LeopardError(f"{path}: not an IDX file of unsigned bytes with {dimensions} dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dimensions))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * dimensions)
    if body.size != int(np.prod(shape)):
        raise LeopardError(f"{path}: the header says {list(shape)} but the file holds {body.size} bytes")
    return body.reshape(shape)


def _part(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise LeopardError(f"{folder}: {stem}[.gz] is missing (a folder of IDX files needs "
                       f"{', '.join(name for pair in FILES.values() for name in pair)})")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _read_image(path: Path, raw: bytes) -> np.ndarray:
    """``[H, W]`` uint8 grayscale pixels of the image file ``path`` whose bytes are ``raw``, or a
    one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            return np.asarray(image.convert("L"), np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise LeopardError(f"{path}: not a readable image ({error})") from None


def _class_folders(folder: Path) -> list[Path]:
    classes = sorted(path for path in folder.iterdir() if path.is_dir())
    if not classes:
        raise LeopardError(f"{folder}: no class folders (an image folder holds train/<class>/ and "
                           "test/<class>/ of PNG or JPEG files)")
    return classes


def load_image_folder(folder: Path, name: str) -> ImageSet:
    """The images of a ``train/<class>/``, ``test/<class>/`` folder (see the module docstring)."""
    digest = hashlib.sha256()
    names = [path.name for path in _class_folders(folder / "train")]
    if [path.name for path in _class_folders(folder / "test")] != names:
        raise LeopardError(f"{folder}: train/ and test/ must hold the same class folders")
    parts, shape = {}, None
    for split in ("train", "test"):
        pixels, labels = [], []
        for label, class_name in enumerate(names):
            files = sorted(path for path in (folder / split / class_name).iterdir()
                           if path.suffix.lower() in IMAGE_SUFFIXES)
            for path in files:
                raw = path.read_bytes()
                image = _read_image(path, raw)
                if shape is None:
                    shape = image.shape
                if image.shape != shape:
                    raise LeopardError(f"{path}: {image.shape[1]}×{image.shape[0]} pixels, the others "
                                       f"{shape[1]}×{shape[0]}; resize the images to one size")
                digest.update(f"{split}/{class_name}/{path.name}\0".encode() + raw)
                pixels.append(image)
                labels.append(label)
        if not pixels:
            raise LeopardError(f"{folder / split}: no PNG or JPEG images in its class folders")
        parts[split] = Images(np.stack(pixels), np.array(labels, np.int64))
    return ImageSet(name, parts["train"], parts["test"], len(names), digest.hexdigest())


def load(name: str) -> ImageSet:
    """The images of ``--data name`` (see the module docstring)."""
    folder = folder_of(name)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return load_image_folder(folder, name)
    digest = hashlib.sha256()
    parts = {}
    for split, (pixels_stem, labels_stem) in FILES.items():
        pixels_path, labels_path = _part(folder, pixels_stem), _part(folder, labels_stem)
        pixels, labels = read_idx(pixels_path, 3), read_idx(labels_path, 1)
        if len(pixels) != len(labels):
            raise LeopardError(f"{folder}: {len(pixels)} {split} images but {len(labels)} labels")
        digest.update(pixels_path.read_bytes() + labels_path.read_bytes())
        parts[split] = Images(pixels, labels.astype(np.int64))
    if parts["train"].pixels.shape[1:] != parts["test"].pixels.shape[1:]:
        raise LeopardError(f"{folder}: training and test images differ in size")
    classes = int(max(parts["train"].labels.max(), parts["test"].labels.max())) + 1
    return ImageSet(name, parts["train"], parts["test"], classes, digest.hexdigest())


def pixel_values(pixels: np.ndarray) -> torch.Tensor:
    """``[n, 1, H, W]`` float32 model inputs of uint8 ``[n, H, W]`` images: ``pixel / 127.5 − 1``."""
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)[:, None]


def batches(images: Images, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(pixel_values, labels)`` of ``size`` images at a time, in order."""
    for start in range(0, len(images), size):
        part = images.take(np.arange(start, min(start + size, len(images))))
        yield pixel_values(part.pixels), torch.from_numpy(part.labels)


def pick(images: Images, count: int, seed: int, option: str) -> np.ndarray:
    """The first ``count`` of a ``default_rng(seed)`` permutation of ``images``, or a one-line error."""
    if not 1 <= count <= len(images):
        raise LeopardError(f"{option} must be in [1, {len(images)}] (images), got {count}")
    return np.random.default_rng(seed).permutation(len(images))[:count]
