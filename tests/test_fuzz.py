"""A seeded fuzz of every command's file inputs and options through the command line, in this process:
random bytes, truncations and bit flips of valid files, random arrays, dtypes and shapes, random JSON,
odd paths and odd option values. Whatever the input: never an exception out of ``main``, exit code 0,
1 or 2, one error line on exit code 2 and nothing written then, never an input changed.

``LEOPARD_FUZZ_EXAMPLES`` raises the number of examples per command (the suite's default is small)."""

import contextlib
import hashlib
import io
import json
import os
import signal
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import seed as fuzz_seed
from hypothesis import strategies as st

from leopard.hw.config import preset
from leopard.model.reference import synthetic
from leopard.model.reference import trace as trace_file
from leopard.scripts.cli import main

EXAMPLES = int(os.environ.get("LEOPARD_FUZZ_EXAMPLES", "25"))
HANG_SECONDS = 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TINY = preset("tiny")


def _valid_trace() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.npz"
        trace_file.save(synthetic.random_trace(TINY, seed=5, problems=2), path)
        return path.read_bytes()


VALID_TRACE = _valid_trace()
VALID_CONFIG = TINY.to_json().encode()
VALID_GOLDEN = json.dumps({"problems": 2, "pruned_fraction": 0.5, "mean_planes": 2.5, "mean_planes_pruned": 2,
                           "speedup": 1.5, "efficiency": 0.9}).encode()
TRACE_FIELDS = ("q", "k", "v", "valid_len", "causal", "threshold", "scale", "config", "layer", "head", "format",
                "version", "weight.x")
DTYPES = ("int8", "int16", "int32", "int64", "uint8", "float32", "float64", "bool", "U8", "complex64")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def random_npz(draw):
    members = {}
    for name in draw(st.lists(st.sampled_from(TRACE_FIELDS), max_size=8, unique=True)):
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
        if name == "config" and draw(st.booleans()):
            array = np.array(VALID_CONFIG.decode())
        elif dtype.kind == "U":
            array = np.full(shape, draw(st.text(max_size=6)), dtype)
        else:
            array = np.array(draw(st.lists(st.integers(-300, 300), min_size=int(np.prod(shape)),
                                           max_size=int(np.prod(shape))))).astype(dtype).reshape(shape)
        member = io.BytesIO()
        np.lib.format.write_array(member, array, allow_pickle=False)
        members[f"{name}.npy"] = member.getvalue()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED,
                                                                          zipfile.ZIP_DEFLATED]))) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def mutations_of(valid):
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 7)), min_size=1, max_size=8)
    return st.one_of(
        st.just(valid),
        st.integers(0, len(valid) - 1).map(lambda cut: valid[:cut]),
        flips.map(lambda spots: _flip(valid, spots)),
        st.binary(max_size=512),
    )


def _flip(data, spots):
    data = bytearray(data)
    for position, bit in spots:
        data[position] ^= 1 << bit
    return bytes(data)


json_files = st.one_of(json_values.map(lambda value: json.dumps(value).encode()), st.binary(max_size=256),
                       st.text(max_size=64).map(str.encode))
trace_files = st.one_of(mutations_of(VALID_TRACE), random_npz())
config_files = st.one_of(mutations_of(VALID_CONFIG), json_files)
odd_places = st.sampled_from(["missing", "folder", "under-a-file", "name\nwith newline", "ünïcode"])
numbers = st.one_of(st.integers(-10, 10).map(str), st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10",
                                                                     "", "1.5", "-0", "4294967296", "seven"]))


def _place(folder, kind, data):
    """Where the fuzzed input lives: a file holding ``data`` or one of the odd places."""
    if kind == "file":
        path = folder / "input"
        path.write_bytes(data)
        return path
    if kind == "folder":
        (folder / "a-folder").mkdir()
        return folder / "a-folder"
    if kind == "under-a-file":
        (folder / "plain").write_text("x")
        return folder / "plain" / "input"
    return folder / kind


def _snapshot(folder):
    return {path: (hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None)
            for path in sorted(folder.rglob("*"))}


def _run(argv, folder, out):
    """Run the command; check exit code, the error line, nothing written on refusal, inputs unchanged."""
    before = _snapshot(folder)
    errors = io.StringIO()

    def hang(signum, frame):
        raise AssertionError(f"leopard {' '.join(map(str, argv))} ran past {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([str(arg) for arg in argv])
            except SystemExit as stop:
                code = stop.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = errors.getvalue()
    assert code in (0, 1, 2), (argv, code, text)
    assert "Traceback" not in text, text
    if code == 2:
        last = text.splitlines()[-1] if text else ""
        assert last.startswith(f"leopard {argv[0]}: error: ") or ": error: " in last, (argv, text)
        assert text.endswith("\n") and last == text.rstrip("\n").split("\n")[-1], text
        assert text.count(": error: ") == 1, text
        assert not out.exists(), (argv, text)
    assert {path: digest for path, digest in _snapshot(folder).items() if path in before} == before, argv


def _fuzz(argv_for, data, kind):
    with tempfile.TemporaryDirectory(prefix="leopard-fuzz-") as scratch:
        folder = Path(scratch) / "inputs"
        folder.mkdir()
        out = Path(scratch) / "out" / "result.json"
        source = _place(folder, kind, data)
        _run(argv_for(source, out), folder, out)


kinds = st.one_of(st.just("file"), st.just("file"), st.just("file"), odd_places)


@fuzz_seed(1)
@FUZZ
@given(data=config_files, kind=kinds)
def test_config_loader(data, kind):
    _fuzz(lambda path, out: ["config", "--config", path, "--out", out], data, kind)


@fuzz_seed(2)
@FUZZ
@given(data=trace_files, kind=kinds)
def test_golden_trace_loader(data, kind):
    _fuzz(lambda path, out: ["golden", "--trace", path, "--out", out], data, kind)


@fuzz_seed(3)
@FUZZ
@given(data=st.one_of(st.binary(max_size=512), st.integers(0, len(VALID_TRACE) - 1).map(lambda n: VALID_TRACE[:n])),
       kind=kinds)
def test_sim_trace_loader(data, kind):
    _fuzz(lambda path, out: ["sim", "--trace", path, "--sim", "verilator", "--out", out], data, kind)


@fuzz_seed(4)
@FUZZ
@given(data=trace_files, kind=kinds)
def test_export_loader(data, kind):
    _fuzz(lambda path, out: ["evaluate", path, "--out", out], data, kind)


@fuzz_seed(5)
@FUZZ
@given(seed=numbers, problems=numbers, length=numbers, fraction=numbers, causal=st.booleans())
def test_trace_random_options(seed, problems, length, fraction, causal):
    argv = ["trace-random", "--preset", "tiny", "--seed", seed, "--problems", problems, "--length", length,
            "--prune-fraction", fraction, *(["--causal"] if causal else [])]
    _fuzz(lambda path, out: [*argv, "--out", out.with_suffix(".npz")], b"", "file")


@fuzz_seed(6)
@FUZZ
@given(golden=st.one_of(mutations_of(VALID_GOLDEN), json_files), evaluation=st.none() | json_files,
       timing=st.none() | json_files, sweep=st.none() | json_files,
       trace=st.none() | st.one_of(mutations_of(VALID_TRACE), random_npz()))
def test_report_run_folder(golden, evaluation, timing, sweep, trace):
    files = {"golden.json": golden, "evaluation.json": evaluation, "sim.timing.json": timing,
             "sweep.json": sweep, "trace.npz": trace}
    with tempfile.TemporaryDirectory(prefix="leopard-fuzz-") as scratch:
        run_dir = Path(scratch) / "run"
        run_dir.mkdir()
        for name, data in files.items():
            if data is not None:
                (run_dir / name).write_bytes(data)
        written = run_dir / "summary.json"
        before = _snapshot(run_dir)
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            code = main(["report", str(run_dir)])
        assert code in (0, 2), errors.getvalue()
        after = _snapshot(run_dir)
        assert {path: digest for path, digest in after.items() if path in before} == before
        if code == 2:
            assert errors.getvalue().count("\n") == 1, errors.getvalue()
            assert after == before and not written.exists()


@pytest.mark.parametrize("command", ["requantize", "trace"])
def test_export_commands_refuse_the_same_damaged_file(command, tmp_path):
    """The training commands read exports through the same loader the fuzz drives with ``evaluate``."""
    damaged = tmp_path / "export.npz"
    damaged.write_bytes(VALID_TRACE[: len(VALID_TRACE) // 2])
    extra = ["--sentences", "1"] if command == "trace" else []
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main([command, str(damaged), *extra, "--out", str(tmp_path / "out.npz")])
    assert code == 2 and "is not an .npz file" in errors.getvalue()
    assert not (tmp_path / "out.npz").exists()


@fuzz_seed(7)
@FUZZ
@given(data=json_files, kind=kinds)
def test_manifest_loader(data, kind):
    _fuzz(lambda path, out: ["bench-levers", path, "--out", out, "--work", out.parent / "work"], data, kind)


@fuzz_seed(8)
@FUZZ
@example(data=b'{"tolerance": 0.1, "slack": 4, "designs": {"\\u001e": null}}', kind="file")
@given(data=st.one_of(json_files, json_values.map(lambda value: json.dumps(
    {"tolerance": 0.1, "slack": 4, "designs": value}).encode())), kind=kinds)
def test_synthesis_baseline_loader(data, kind):
    _fuzz(lambda path, out: ["synth-baseline", "--baseline", path], data, kind)
