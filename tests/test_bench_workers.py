"""`leopard bench-workers`: a fanning-out command timed on several worker counts, its outputs compared."""

import json

import pytest

from leopard.hw import fanout
from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main
from leopard.scripts.scale_commands import digest


def test_golden_on_one_and_two_workers_is_timed_and_the_same(tmp_path, capsys):
    trace = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("small"), seed=2, problems=20), trace)
    out = tmp_path / "bench.json"
    assert main(["bench-workers", "--workers", "1", "2", "--out", str(out), "--",
                 "golden", "--trace", str(trace), "--out", str(tmp_path / "golden.json")]) == 0
    report = json.loads(out.read_text())
    assert report["identical_outputs"] is True and report["command"][:2] == ["leopard", "golden"]
    assert [row["workers"] for row in report["rows"]] == [1, 2]
    assert all(len(row["seconds"]) == 1 and row["seconds"][0] > 0 for row in report["rows"])
    assert "| 2 |" in out.with_suffix(".md").read_text()


def test_the_digest_skips_timings_and_checkpoints_only(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text("{}")
    first = digest(tmp_path)
    (tmp_path / "sim.timing.json").write_text("1.0")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"x")
    assert digest(tmp_path) == first
    (tmp_path / "run" / "report.json").write_text("{ }")
    assert digest(tmp_path) != first


def test_an_existing_cluster_with_threaded_workers_is_refused():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            pytest.raises(LeopardError, match=r"has workers with several threads .*--nthreads 1"), \
            fanout.Pool(scheduler=cluster.scheduler_address):
        pass


def test_a_measured_command_writing_over_its_input_is_refused_before_anything_is_removed(tmp_path, capsys):
    trace = tmp_path / "t.npz"
    trace_file.save(synthetic.random_trace(preset("tiny"), seed=2, problems=2), trace)
    before = trace.read_bytes()
    assert main(["bench-workers", "--out", str(tmp_path / "b.json"), "--", "golden", "--trace", str(trace),
                 "--out", str(tmp_path)]) == 2
    assert f"input {trace} is in what it writes" in capsys.readouterr().err
    assert trace.read_bytes() == before


def test_a_command_that_does_not_fan_out_is_refused(tmp_path, capsys):
    assert main(["bench-workers", "--out", str(tmp_path / "b.json"), "--", "generate", "--preset", "tiny",
                 "--out", str(tmp_path / "g")]) == 2
    assert "give the command to measure after --, one of golden, sim" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()
