"""The classes of bad input that once lost data or gave tracebacks: an output that is an input, output
paths that cannot be written, malformed files of every kind, out-of-range numbers and work too large for
memory. Each is one line on stderr, exit code 2, nothing written, every input unchanged."""

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from leopard.hw.config import preset
from leopard.hw.files import all_or_nothing, write_atomic
from leopard.hw.npz import write_npz
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file


def _npz_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    trace = synthetic.random_trace(preset("tiny"), seed=1, problems=2)
    trace_file.save(trace, folder / "t.npz")
    (folder / "config.json").write_text(preset("tiny").to_json())
    (folder / "latin1.json").write_bytes(b'{"lanes": "\xe9"}')
    (folder / "deep.json").write_text("[" * 200_000)
    (folder / "text.npz").write_text("q,k,v\n1,2,3\n")
    np.save(folder / "bare.npy", np.zeros(3))
    os.rename(folder / "bare.npy", folder / "bare.npz")
    (folder / "no-header.npz").write_bytes(_npz_bytes({"q.npy": b"\x00" * 64}))
    valid = (folder / "t.npz").read_bytes()
    position = valid.index(b"q.npy") + 40
    (folder / "bad-deflate.npz").write_bytes(valid[:position] + bytes(64) + valid[position + 64:])
    (folder / "garbage-member.npz").write_bytes(_npz_bytes({"format.npy": b"garbage"}))
    (folder / "not-npy-member.npz").write_bytes(_npz_bytes({"notes.txt": b"hello"}))
    padded = dataclasses.replace(
        trace, q=np.pad(trace.q, ((0, 0), (0, 50_000 - trace.length), (0, 0))),
        k=np.pad(trace.k, ((0, 0), (0, 50_000 - trace.length), (0, 0))),
        v=np.pad(trace.v, ((0, 0), (0, 50_000 - trace.length), (0, 0))),
        valid_len=np.full(trace.count, 2, trace.valid_len.dtype))
    trace_file.save(padded, folder / "padded.npz")
    for name, text in (("list", "[1, 2]"), ("string", '"sim"'), ("empty", "{}")):
        (folder / f"run-{name}").mkdir()
        (folder / f"run-{name}" / "sim.json").write_text(text)
    (folder / "run-timing").mkdir()
    (folder / "run-timing" / "golden.json").write_text(
        '{"problems": 1, "pruned_fraction": 0.5, "mean_planes": 2, "mean_planes_pruned": 1, '
        '"speedup": 1.5, "efficiency": 0.9}')
    (folder / "run-timing" / "sim.timing.json").write_text("{}")
    (folder / "a-file").write_text("not a folder")
    (folder / "a-folder").mkdir()
    (folder / "rtl").mkdir()
    (folder / "rtl" / "config.json").write_text(preset("tiny").to_json())
    return folder


TRACE = ["--trace", "{dir}/t.npz"]
CASES = [
    # data loss: an output that is an input
    ("golden", ["golden", *TRACE, "--out", "{dir}/t.npz"], "is the input --trace"),
    ("golden", ["golden", *TRACE, "--out", "{dir}/../{base}/t.npz"], "is the input --trace"),
    ("sim", ["sim", *TRACE, "--sim", "verilator", "--out", "{dir}/t.npz"], "is the input --trace"),
    ("config", ["config", "--config", "{dir}/config.json", "--out", "{dir}/config.json"], "is the input"),
    ("generate", ["generate", "--config", "{dir}/rtl/config.json", "--out", "{dir}/rtl"], "holds the input"),
    ("requantize", ["requantize", "{dir}/t.npz", "--out", "{dir}/t.npz"], "is the input export"),
    ("trace", ["trace", "{dir}/t.npz", "--sentences", "1", "--out", "{dir}/t.npz"], "is the input export"),
    ("synth", ["synth", "--config", "{dir}/rtl/config.json", "--target", "ecp5", "--out", "{dir}/rtl"],
     "holds the input"),
    # output paths
    ("golden", ["golden", *TRACE, "--out", "{dir}/a-file/report.json"], "a-file is a file, not a folder"),
    ("golden", ["golden", *TRACE, "--out", "{dir}/a-folder"], "is a folder; give a file path"),
    ("golden", ["golden", *TRACE, "--out", "/proc/leopard/report.json"], "cannot write in /proc"),
    ("sim", ["sim", *TRACE, "--sim", "verilator", "--out", "{dir}/a.json"], "a.timing.json is a folder"),
    ("generate", ["generate", "--preset", "tiny", "--out", "{dir}/a-file"], "exists and is not a folder"),
    ("bench-sim", ["bench-sim", "--preset", "tiny", "--out", "{dir}/b.json"], "b.md is a folder"),
    ("report", ["report", "{dir}/a-file"], "is a file; give the run folder"),
    # loaders
    ("golden", ["golden", *TRACE, "--config", "{dir}/latin1.json", "--out", "{out}"], "not UTF-8 text"),
    ("config", ["config", "--config", "{dir}/deep.json"], "nested too deeply"),
    ("golden", ["golden", "--trace", "{dir}/text.npz", "--out", "{out}"], "not a zip archive of .npy arrays"),
    ("golden", ["golden", "--trace", "{dir}/bare.npz", "--out", "{out}"], "is a bare .npy array"),
    ("golden", ["golden", "--trace", "{dir}/no-header.npz", "--out", "{out}"], "member 'q' is damaged"),
    ("golden", ["golden", "--trace", "{dir}/bad-deflate.npz", "--out", "{out}"], "member 'q' is damaged"),
    ("golden", ["golden", "--trace", "{dir}/not-npy-member.npz", "--out", "{out}"],
     "member 'notes.txt' is not a .npy array"),
    ("evaluate", ["evaluate", "{dir}/garbage-member.npz", "--out", "{out}"], "member 'format' is damaged"),
    ("report", ["report", "{dir}/run-list"], "must hold a JSON object, got array"),
    ("report", ["report", "{dir}/run-string"], "must hold a JSON object, got string"),
    ("report", ["report", "{dir}/run-empty"], "problems must be present"),
    ("report", ["report", "{dir}/run-timing"], "frontend must be present"),
    # numbers and sizes
    ("trace-random", ["trace-random", "--preset", "tiny", "--seed", "-1", "--out", "{out}"],
     "argument --seed: must be in [0, 4294967295], got -1"),
    ("trace-random", ["trace-random", "--preset", "tiny", "--seed", "1", "--problems", "1000000000",
                      "--out", "{out}"], "needs about 3099.4 GB of memory"),
    ("trace-random", ["trace-random", "--preset", "tiny", "--seed", "1", "--prune-fraction", "nan",
                      "--out", "{out}"], "must be a finite number"),
    ("sim", ["sim", "--trace", "{dir}/padded.npz", "--sim", "verilator", "--out", "{out}"],
     "simulating 2 problems of 50000 tokens needs about"),
    ("build-board", ["build-board", "--board", "ecpix5-85", "--clock-mhz", "nan", "--out", "{out}"],
     "argument --clock-mhz: must be a finite number, got 'nan'"),
    ("build-board", ["build-board", "--board", "ecpix5-85", "--clock-mhz", "inf", "--out", "{out}"],
     "must be a finite number"),
    ("build-board", ["build-board", "--board", "ecpix5-85", "--clock-mhz", "0", "--out", "{out}"],
     "must be > 0, got 0"),
    ("train", ["train", "--seed", "1.5", "--out", "{out}"], "must be a whole number, got '1.5'"),
    ("train", ["train", "--clip-percentile", "101", "--out", "{out}"], "must be > 0 and ≤ 100, got 101"),
]


def _digests(folder):
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.mark.parametrize(("command", "argv", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_refused_in_one_line_with_nothing_written_and_inputs_unchanged(command, argv, message, inputs, tmp_path):
    (inputs / "a.timing.json").mkdir(exist_ok=True)
    (inputs / "b.md").mkdir(exist_ok=True)
    out = tmp_path / "out"
    argv = [arg.format(dir=inputs, base=inputs.name, out=out) for arg in argv]
    before = _digests(inputs)
    listing = sorted(inputs.rglob("*"))
    run = subprocess.run([sys.executable, "-m", "leopard.scripts", *argv], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"leopard {command}: error: ")
    assert message in run.stderr, run.stderr
    assert not out.exists()
    assert sorted(inputs.rglob("*")) == listing
    assert _digests(inputs) == before


def test_a_failing_command_writes_none_of_its_files(tmp_path):
    with pytest.raises(RuntimeError), all_or_nothing():
        write_atomic(tmp_path / "new" / "deeper" / "a.txt", "a")
        write_atomic(tmp_path / "b.txt", "b")
        raise RuntimeError("the third file failed")
    assert list(tmp_path.iterdir()) == []


def test_a_succeeding_command_writes_all_its_files_at_the_end(tmp_path):
    with all_or_nothing():
        write_atomic(tmp_path / "a.txt", "first")
        write_atomic(tmp_path / "a.txt", "second")
        with all_or_nothing():
            write_npz({"x": np.arange(3)}, tmp_path / "inner.npz")
        assert (tmp_path / "inner.npz").exists()
        assert not (tmp_path / "a.txt").exists()
        write_atomic(tmp_path / "cache.txt", "kept", now=True)
        assert (tmp_path / "cache.txt").read_text() == "kept"
    assert (tmp_path / "a.txt").read_text() == "second"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.txt", "cache.txt", "inner.npz"]


def test_a_sim_with_mismatches_still_writes_its_reports(tmp_path, monkeypatch):
    """A sim that finds mismatches succeeded at writing: its full report set, and exit code 1 (here the
    expectation is mutated: one plane more on every key)."""
    from leopard.scripts.cli import main
    from leopard.verif import playback, player_sim

    trace_file.save(synthetic.random_trace(preset("tiny"), seed=3, problems=1), tmp_path / "t.npz")
    original = player_sim.expected_results

    def one_plane_more(cfg, problems, modes=playback.MODES):
        return {mode: dataclasses.replace(result, planes=result.planes + 1)
                for mode, result in original(cfg, problems, modes).items()}

    monkeypatch.setattr(player_sim, "expected_results", one_plane_more)
    code = main(["sim", "--trace", str(tmp_path / "t.npz"), "--sim", "verilator", "--out", str(tmp_path / "sim.json")])
    assert code == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sim.json", "sim.timing.json", "t.npz"]
