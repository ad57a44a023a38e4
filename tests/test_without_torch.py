"""The hardware half of the flow needs none of the training packages: ``leopard generate``, ``golden``
and ``sim`` run in a process where importing torch (or any package of the ``train`` extra) fails, and
the training commands there say in one line what is missing."""

import json
import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("torch", "safetensors", "tokenizers", "tqdm", "transformers", "gguf", "accelerate")

RUNNER = textwrap.dedent(f"""
    import importlib.abc, sys

    class Hiding(importlib.abc.MetaPathFinder):
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                return None
            return self.finder.find_spec(name, path, target)

        def find_distributions(self, *args, **kwargs):
            return getattr(self.finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs)

        def invalidate_caches(self):
            getattr(self.finder, "invalidate_caches", lambda: None)()

    sys.meta_path[:] = [Hiding(finder) for finder in sys.meta_path]
    from leopard.scripts.cli import main
    code = main(sys.argv[1:])
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in {BLOCKED!r})
    if leaked:
        print("imported:", leaked, file=sys.stderr)
        code = 3
    sys.exit(code)
""")


def leopard(*argv, cwd):
    return subprocess.run([sys.executable, "-c", RUNNER, *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, check=False)


def test_the_runner_hides_torch(tmp_path):
    hidden = subprocess.run([sys.executable, "-c", RUNNER.replace("from leopard", "import torch\nfrom leopard")],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert hidden.returncode != 0 and "No module named 'torch'" in hidden.stderr


def test_generate_golden_and_sim_run_without_torch(tmp_path):
    steps = [
        ("generate", "--preset", "tiny", "--out", "rtl"),
        ("trace-random", "--preset", "tiny", "--out", "t.npz", "--seed", "1", "--problems", "2", "--length", "6"),
        ("golden", "--trace", "t.npz", "--out", "golden.json"),
        ("sim", "--trace", "t.npz", "--sim", "icarus", "--out", "sim.json"),
    ]
    for step in steps:
        run = leopard(*step, cwd=tmp_path)
        assert run.returncode == 0, (step, run.stderr)
    assert (tmp_path / "rtl" / "leopard_engine.v").exists()
    assert json.loads((tmp_path / "sim.json").read_text())["mismatches"] == 0


@pytest.mark.parametrize("argv", [
    ("train", "--out", "run"),
    ("evaluate", "export.npz"),
    ("compare", "export.npz", "--out", "compared"),
    ("trace-model", "--out", "traced"),
])
def test_training_commands_name_the_missing_package(tmp_path, argv):
    run = leopard(*argv, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "the package torch is not installed" in run.stderr
