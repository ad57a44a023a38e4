import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LEOPARD_WORKERS", "1")
"""Commands run their points in the test's own process unless a test asks for Dask workers."""


@pytest.fixture(scope="session")
def training_inputs(tmp_path_factory):
    """A tiny BERT checkpoint folder and the data spec of a tiny labelled CSV (torch is imported only by
    the tests that use them)."""
    from training_fixtures import tiny_checkpoint, tiny_csv, tiny_spec

    folder = tmp_path_factory.mktemp("training_inputs")
    return tiny_checkpoint(folder / "bert"), tiny_spec(tiny_csv(folder / "reviews.csv"))


@pytest.fixture(scope="session")
def reference_run(training_inputs, tmp_path_factory):
    """A finished tiny training run (``TINY_SETTINGS``), shared read-only by the training tests."""
    from training_fixtures import TINY_ENGINE, TINY_SETTINGS

    from leopard.model.training.train import train

    model_dir, spec = training_inputs
    run_dir = tmp_path_factory.mktemp("reference")
    train(run_dir, TINY_SETTINGS, spec, TINY_ENGINE, model_dir=model_dir, progress=False)
    return run_dir
