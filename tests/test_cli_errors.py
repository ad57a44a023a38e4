"""Every command refuses bad input with one line on stderr, exit code 2, no traceback and no output."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leopard.hw.config import preset
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    trace_file.save(synthetic.random_trace(preset("tiny"), seed=1, problems=1), folder / "tiny.npz")
    (folder / "broken.json").write_text('{"lanes": ')
    (folder / "zero-lanes.json").write_text('{"lanes": 0}')
    (folder / "thresholds.json").write_text('{"theta": "high"}')
    (folder / "not-an-export.npz").write_bytes(b"PK\x03\x04 not a zip")
    np.savez(folder / "empty.npz", nothing=np.zeros(1))
    (folder / "run").mkdir()
    (folder / "run" / "sim.json").write_text("{broken")
    (folder / "model-run").mkdir()
    (folder / "model-run" / "model-trace.json").write_text("{}")
    return folder


CASES = [
    ("config", ["config", "--preset", "huge"], "unknown preset 'huge'"),
    ("config", ["config", "--config", "{dir}/broken.json"], "config is not valid JSON"),
    ("trace-random", ["trace-random", "--preset", "tiny", "--seed", "1", "--length", "99", "--out", "{out}"],
     "--length must be in [1, 8]"),
    ("trace-random", ["trace-random", "--config", "{dir}/zero-lanes.json", "--seed", "1", "--out", "{out}"],
     "lanes must be in [1, 64], got 0"),
    ("golden", ["golden", "--trace", "{dir}/missing.npz", "--out", "{out}"], "no such file"),
    ("golden", ["golden", "--trace", "{dir}/empty.npz", "--out", "{out}"], "field 'q': missing"),
    ("golden", ["golden", "--trace", "{dir}/tiny.npz", "--preset", "small", "--out", "{out}"],
     "holds problems of another config"),
    ("bench-golden", ["bench-golden", "--preset", "tiny", "--problems", "0", "--out", "{out}"],
     "argument --problems: must be at least 1, got 0"),
    ("generate", ["generate", "--preset", "nope", "--out", "{out}"], "unknown preset 'nope'"),
    ("sim", ["sim", "--trace", "{dir}/tiny.npz", "--sim", "icarus", "--out", "{out}"],
     "icarus: 'iverilog' not found on PATH"),
    ("sim", ["sim", "--trace", "{dir}/tiny.npz", "--sim", "verilator", "--chunk", "0", "--out", "{out}"],
     "argument --chunk: must be at least 1, got 0"),
    ("bench-sim", ["bench-sim", "--config", "{dir}/broken.json", "--out", "{out}"], "config is not valid JSON"),
    ("evaluate", ["evaluate", "{dir}/missing.npz", "--out", "{out}"], "no such file"),
    ("trace", ["trace", "{dir}/not-an-export.npz", "--sentences", "2", "--out", "{out}"], "export"),
    ("train", ["train", "--data", "{dir}/missing.csv", "--out", "{out}"], "missing.csv"),
    ("synth", ["synth", "--preset", "tiny", "--target", "ecp5", "--lanes", "0", "--out", "{out}"], "lanes"),
    ("report", ["report", "{dir}/no-such-run"], "does not exist"),
    ("report", ["report", "{dir}/run"], "is not valid JSON"),
    ("demo", ["demo", "--export", "{dir}/missing.npz", "--out", "{out}"], "not found"),
    ("trace-model", ["trace-model", "--model", "{dir}/no-model", "--out", "{out}"],
     "not a checkpoint folder with config.json, a .gguf file, or a built-in name"),
    ("trace-model", ["trace-model", "--model", "minilm", "--preset", "smollm2", "--out", "{out}"],
     "minilm has head dim 32, the engine config 64"),
    ("trace-model", ["trace-model", "--model", "minilm", "--thresholds", "{dir}/thresholds.json", "--out", "{out}"],
     "'theta' must be a [layers][heads] table"),
    ("trace-model", ["trace-model", "--model", "minilm", "--dense-control", "minilm", "--out", "{out}"],
     "--dense-control compares task figures: give a decoder, a text classifier"),
    ("train-model", ["train-model", "--model", "minilm", "--task", "language-modelling", "--out", "{out}"],
     "--task language-modelling does not fit minilm, an encoder: its task is classification"),
    ("train", ["train", "--model", "smollm2", "--plane-cost", "1", "--out", "{out}"],
     "--plane-cost applies to BERT checkpoints; --model smollm2 is a decoder trained through the hooked attention"),
    ("train", ["train", "--model", "smollm2", "--epochs", "1", "--out", "{out}"],
     "--epochs applies to encoders; --model smollm2 is a decoder trained through the hooked attention"),
    ("train", ["train", "--model", "smollm2", "--preset", "minilm", "--out", "{out}"],
     "smollm2 has head dim 64, the engine config 32"),
    ("train", ["train", "--model", "smollm2", "--key-block", "5", "--out", "{out}"],
     "--key-block must be 0 or a divisor of the head dim 64"),
    ("train", ["train", "--model", "smollm2", "--task", "classification", "--out", "{out}"],
     "--task classification does not fit smollm2, a decoder: its task is language-modelling"),
    ("train", ["train", "--task", "image-classification", "--out", "{out}"],
     "--task image-classification does not fit MiniLM, a BERT checkpoint: its task is classification"),
    ("sweep", ["sweep", "--model", "smollm2", "--out", "{out}"], "leopard sweep trains BERT checkpoint folders"),
    ("train-model", ["train-model", "--soft-steps", "0", "--out", "{out}"], "--soft-steps must be at least 1"),
    ("train-model", ["train-model", "--model", "{dir}/model.npz", "--out", "{out}"],
     "an export is traced and evaluated, not trained"),
    ("model-table", ["model-table", "{dir}", "--out", "{out}"], "no model-trace.json; give folders"),
    ("model-table", ["model-table", "{dir}/model-run", "--out", "{dir}/model-run/model-trace.md"],
     "would replace a file of the run"),
    ("train-vit", ["train-vit", "--data", "{dir}", "--out", "{out}"], "train-images-idx3-ubyte[.gz] is missing"),
]


@pytest.mark.parametrize(("command", "argv", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_no_output(command, argv, message, inputs, tmp_path):
    out = tmp_path / "out"
    argv = [arg.format(dir=inputs, out=out) for arg in argv]
    env = dict(os.environ)
    if command == "sim" and "icarus" in argv:
        env["PATH"] = str(Path(sys.executable).parent)
    run = subprocess.run([sys.executable, "-m", "leopard.scripts", *argv], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"leopard {command}: error: ")
    assert message in run.stderr
    assert not out.exists()
