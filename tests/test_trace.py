import json
import subprocess
import sys

import numpy as np
import pytest

from leopard.hw.config import preset
from leopard.model.reference import golden, synthetic
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main


@pytest.fixture
def trace_path(tmp_path):
    path = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("small"), seed=1, problems=3), path)
    return path


def _rewrite(path, tmp_path, **changes):
    with np.load(path) as archive:
        fields = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    out = tmp_path / "bad.npz"
    np.savez(out, **fields)
    return out


def test_round_trip_is_exact(trace_path):
    trace = trace_file.load(trace_path)
    again = trace_file.load(trace_path)
    for name in ("q", "k", "v", "valid_len", "threshold", "scale"):
        assert np.array_equal(getattr(trace, name), getattr(again, name))
    assert trace.config == preset("small")


def test_saving_twice_gives_identical_bytes(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for path in (a, b):
        trace_file.save(synthetic.random_trace(preset("tiny"), seed=7, problems=2), path)
    assert a.read_bytes() == b.read_bytes()


def test_a_third_party_numpy_file_loads(tmp_path):
    cfg = preset("tiny")
    path = tmp_path / "hand.npz"
    np.savez(
        path, q=np.ones((1, 3, 4), np.int8), k=-np.ones((1, 3, 4), np.int16),
        v=np.zeros((1, 3, 4), np.int32), valid_len=np.array([2]), causal=np.array(True),
        threshold=np.array([-3]), scale=np.array([0.5]), config=np.array(cfg.to_json()),
    )
    trace = trace_file.load(path)
    assert trace.causal and trace.valid_len.tolist() == [2]


def _read_in_blocks(path):
    with trace_file.TraceReader(path) as reader:
        return [trace for _, trace in reader.blocks(2)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"valid_len": None}, "field 'valid_len': missing"),
        ({"k": np.full((3, 20, 6), 40, np.int8)}, "field 'k': value 40 outside the 6-bit signed range [-32, 31]"),
        ({"q": np.zeros((3, 20, 5), np.int8)}, "field 'k': shape (3, 20, 6) differs from q's (3, 20, 5)"),
        ({"v": np.zeros((3, 20, 6), np.float32)}, "field 'v': must be an integer array, got dtype float32"),
        ({"valid_len": np.array([1, 2, 21])}, "field 'valid_len': values must be in [1, 20]"),
        ({"threshold": np.array([0, 1 << 20, 0])}, "field 'threshold': value 1048576 outside the 14-bit threshold register range [-8192, 8191]"),
        ({"scale": np.array([1.0, -1.0, 1.0])}, "field 'scale': scale must be a positive finite number"),
        ({"causal": np.array([True, False])}, "field 'causal': must be a 0-d boolean"),
        ({"config": np.array('{"lanes": 0}')}, "field 'config': lanes must be in [1, 64], got 0"),
        ({"layer": np.zeros(2, np.int64)}, "field 'layer': must have shape (3,), got (2,)"),
    ],
)
@pytest.mark.parametrize("read", [trace_file.load, _read_in_blocks])
def test_malformed_fields_are_named(trace_path, tmp_path, changes, message, read):
    bad = _rewrite(trace_path, tmp_path, **changes)
    with pytest.raises(trace_file.TraceError) as error:
        read(bad)
    assert str(error.value).startswith(f"trace {bad}: {message}")


def test_a_truncated_file_is_refused(trace_path, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(trace_path.read_bytes()[:300])
    with pytest.raises(trace_file.TraceError, match=r"is not an \.npz file"):
        trace_file.load(cut)


def test_files_are_written_with_the_usual_permissions(tmp_path):
    path = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("tiny"), seed=2, problems=1), path)
    assert path.stat().st_mode & 0o644 == 0o644


def test_not_an_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(trace_file.TraceError, match=r"is not an \.npz file"):
        trace_file.load(path)


def test_golden_command_writes_the_report_keys(trace_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["golden", "--trace", str(trace_path), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    for key in ("pruned_fraction", "mean_planes", "mean_planes_pruned", "mean_planes_kept",
                "speedup", "efficiency", "cycles_load"):
        assert key in figures
    assert set(figures["cycles"]) == {"early_termination", "dense", "ideal"}
    assert figures["speedup"] == figures["cycles"]["dense"] / figures["cycles"]["early_termination"] or \
        abs(figures["speedup"] - figures["cycles"]["dense"] / figures["cycles"]["early_termination"]) < 1e-6
    assert "pruned_fraction" in capsys.readouterr().out


def test_golden_refuses_a_mismatched_preset(trace_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["golden", "--trace", str(trace_path), "--out", str(out), "--preset", "tiny"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith(f"leopard golden: error: trace {trace_path} holds problems of another config than --preset tiny (")
    assert err.count("\n") == 1


def test_trace_random_is_reproducible(tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        assert main(["trace-random", "--preset", "tiny", "--seed", "5", "--out", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_bad_input_exits_2_without_traceback_or_output(tmp_path):
    out = tmp_path / "r.json"
    missing = tmp_path / "missing.npz"
    run = subprocess.run(
        [sys.executable, "-m", "leopard.scripts", "golden", "--trace", str(missing), "--out", str(out)],
        capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert run.stderr == f"leopard golden: error: trace {missing}: no such file\n"
    assert not out.exists()


def test_golden_runs_a_trace_on_another_microarchitecture(trace_path, tmp_path):
    """Lanes and zero-plane skipping change the cycles and planes, not the decisions or the scores."""
    trace = trace_file.load(trace_path)
    other = trace.config.replace(lanes=trace.config.lanes + 1, skip_zero_planes=True)
    config = tmp_path / "other-config.json"
    config.write_text(other.to_json())
    reports = {}
    for name, extra in (("own", []), ("other", ["--config", str(config)])):
        assert main(["golden", "--trace", str(trace_path), "--out", str(tmp_path / f"{name}.json"), *extra]) == 0
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["other"]["pruned_fraction"] == reports["own"]["pruned_fraction"]
    assert reports["other"]["mean_planes"] < reports["own"]["mean_planes"]
    early = golden.run(other, trace.problems())
    assert reports["other"]["mean_planes"] == round(float(early.planes[early.visible].mean()), 6)
