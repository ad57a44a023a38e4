import dataclasses
import json
import zipfile

import numpy as np
import pytest

from leopard.hw import fanout
from leopard.hw.config import preset
from leopard.hw.files import json_text
from leopard.hw.npz import read_npz, write_npz
from leopard.model.reference import report, synthetic, whole_trace
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main


def mixed_trace(name, seed, *, causal=False, skip=False, problems=30):
    """A synthetic trace whose problems have random token counts (grouped and cut by the fast path)."""
    cfg = preset(name).replace(skip_zero_planes=skip)
    trace = synthetic.random_trace(cfg, seed=seed, problems=problems, causal=causal)
    lengths = np.random.default_rng(seed).integers(1, trace.length + 1, trace.count)
    return dataclasses.replace(trace, valid_len=lengths.astype(np.int32))


@pytest.mark.parametrize(("name", "causal", "skip"), [
    ("tiny", False, False), ("small", True, False), ("small", False, True), ("minilm", True, True),
])
def test_fast_report_equals_the_reference_path(name, causal, skip):
    trace = mixed_trace(name, 3, causal=causal, skip=skip)
    problems = trace.problems()
    totals = report.Totals(trace.config)
    totals.add(*report.reference(trace.config, problems))
    assert json_text(report.golden_report(trace.config, problems)) == json_text(totals.figures())


def test_any_block_size_gives_the_same_report(tmp_path):
    trace = mixed_trace("small", 5, problems=23)
    path = tmp_path / "t.npz"
    trace_file.save(trace, path)
    whole = json_text(report.golden_report(trace.config, trace.problems()))
    problem_bytes = whole_trace.problem_bytes(int(trace.valid_len.max()), trace.length, trace.config.head_dim)
    for problems in (1, 4, 7, 23, 100):
        block = problems * problem_bytes
        assert whole_trace.block_problems(int(trace.valid_len.max()), trace.length, trace.config.head_dim,
                                          block) == problems
        assert json_text(whole_trace.golden_report(path, block_bytes=block)) == whole


def test_padding_costs_no_work_and_a_problem_too_large_is_refused(tmp_path, monkeypatch, capsys):
    trace = mixed_trace("small", 4, problems=6)
    padded = dataclasses.replace(trace, **{name: np.pad(getattr(trace, name), ((0, 0), (0, 50_000), (0, 0)))
                                           for name in ("q", "k", "v")})
    path = tmp_path / "padded.npz"
    trace_file.save(padded, path)
    expected = json_text(report.golden_report(trace.config, trace.problems()))
    assert json_text(whole_trace.golden_report(path)) == expected
    monkeypatch.setenv("LEOPARD_MEMORY_LIMIT_GB", "0.001")
    assert main(["golden", "--trace", str(path), "--out", str(tmp_path / "out.json")]) == 2
    assert "the golden model on a problem of 20 tokens needs about" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_a_compressed_trace_is_streamed_to_the_same_report(tmp_path):
    trace = mixed_trace("small", 6, problems=17)
    stored, deflated = tmp_path / "stored.npz", tmp_path / "deflated.npz"
    trace_file.save(trace, stored)
    write_npz(read_npz(stored, "trace"), deflated, compress=True)
    with trace_file.TraceReader(stored) as a, trace_file.TraceReader(deflated) as b:
        assert a.random_access and not b.random_access
    assert deflated.stat().st_size < stored.stat().st_size
    reports = [json_text(whole_trace.golden_report(path, block_bytes=5 * report.golden.REPORT_BYTES_PER_PAIR
                                                    * trace.length ** 2)) for path in (stored, deflated)]
    assert reports[0] == reports[1] == json_text(report.golden_report(trace.config, trace.problems()))


@pytest.mark.parametrize("name", ["stored.npz", "deflated.npz"])
def test_golden_on_two_dask_workers_writes_the_serial_report(tmp_path, name):
    path = tmp_path / name
    trace_file.save(mixed_trace("small", 9, problems=40), path)
    if name == "deflated.npz":
        write_npz(read_npz(path, "trace"), path, compress=True)
    block = 3 * report.golden.REPORT_BYTES_PER_PAIR * 20 ** 2
    serial, spread = (json_text(whole_trace.golden_report(path, block_bytes=block, pool=fanout.Pool(workers)))
                      for workers in (1, 2))
    assert spread == serial


def test_golden_command_and_its_reference_path_write_the_same_bytes(tmp_path):
    path = tmp_path / "t.npz"
    trace_file.save(mixed_trace("small", 8, causal=True), path)
    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    assert main(["golden", "--trace", str(path), "--out", str(fast)]) == 0
    assert main(["golden", "--trace", str(path), "--out", str(slow), "--reference"]) == 0
    assert fast.read_bytes() == slow.read_bytes()
    assert json.loads(fast.read_text())["problems"] == 30


def test_a_member_cut_short_is_named_and_nothing_is_written(tmp_path, capsys):
    path, cut = tmp_path / "t.npz", tmp_path / "cut.npz"
    trace_file.save(mixed_trace("small", 2), path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(cut, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[: len(data) // 2] if info.filename == "k.npy" else data)
    out = tmp_path / "report.json"
    assert main(["golden", "--trace", str(cut), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"leopard golden: error: trace {cut}: member 'k' ends early: the file is damaged, write it again"
    assert not out.exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"valid_len": np.full(3, 21, np.int32)}, "field 'valid_len': values must be in [1, 20]"),
    ({"q": np.zeros((0, 20, 6), np.int8), "k": np.zeros((0, 20, 6), np.int8), "v": np.zeros((0, 20, 6), np.int8),
      "valid_len": np.zeros(0, np.int32), "threshold": np.zeros(0, np.int64), "scale": np.zeros(0)},
     "field 'q': holds no problems"),
])
def test_the_block_reader_names_a_bad_field_before_any_work(tmp_path, capsys, change, message):
    path = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("small"), seed=1, problems=3), path)
    fields = {**read_npz(path, "trace"), **change}
    write_npz(fields, path, compress=False)
    assert main(["golden", "--trace", str(path), "--out", str(tmp_path / "out.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"leopard golden: error: trace {path}: {message}") and "\n" not in error


def test_a_bit_flip_in_a_stored_member_is_caught_by_its_crc(tmp_path, capsys):
    path = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("small"), seed=1, problems=100), path)
    data = bytearray(path.read_bytes())
    where = data.index(b"k.npy") + 10_000  # beyond the member's first read: only a full pass finds it
    data[where] ^= 1
    path.write_bytes(bytes(data))
    assert main(["golden", "--trace", str(path), "--out", str(tmp_path / "out.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"leopard golden: error: trace {path}: member 'k' is damaged") and "\n" not in error
