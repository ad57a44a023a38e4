"""Small stand-ins for the training tests: a tiny random BERT checkpoint folder (MiniLM's real
tokenizer, 2 layers × 2 heads of dim 4), a labelled CSV whose label is easy to learn, and an engine
config whose head dim matches."""

import csv
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from leopard.hw.config import EngineConfig
from leopard.model.training import bert
from leopard.model.training.data import DataSpec
from leopard.model.training.train import TrainSettings

TINY_BERT = bert.BertConfig(
    hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, max_position_embeddings=32
)
TINY_ENGINE = EngineConfig(head_dim=4, lanes=2, max_seq_len=16, threshold_regs=4)
TINY_SETTINGS = TrainSettings(
    epochs=2.0, soft_steps=6, hard_steps=3, batch_size=8, lr=1e-3, calibration_sentences=16, checkpoint_every=4
)

torch.set_num_threads(1)

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "dull", "boring", "weak"]


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A random tiny BERT saved like a Hugging Face checkpoint (``config.json``, ``model.safetensors``,
    ``tokenizer.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = bert.Bert(TINY_BERT)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    save_file({name: value.contiguous() for name, value in model.state_dict().items()},
              folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(TINY_BERT.to_dict()))
    shutil.copyfile(bert.pretrained_path() / "tokenizer.json", folder / "tokenizer.json")
    return folder


def tiny_csv(path: Path, rows: int = 96, delimiter: str = ",") -> Path:
    """Sentences ``"the film was <word> <word>"`` labelled by their words, in ``rows // 4`` groups."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        writer.writerow(["review", "sentiment", "film"])
        for row in range(rows):
            words = POSITIVE if row % 2 else NEGATIVE
            sentence = f"the film was {words[row % 5]} and {words[(row // 2) % 5]}"
            writer.writerow([sentence, "pos" if row % 2 else "neg", f"film{row // 4}"])
    return path


def tiny_spec(path: Path) -> DataSpec:
    return DataSpec(data=str(path), text_column="review", label_column="sentiment", group_column="film",
                    labels=None, max_tokens=12, test_fraction=0.25)
