"""The host driver: identical results on the golden backend and on the simulated RTL (Amaranth's
simulator and cocotb), and the generated register definitions (C header, Python module)."""

import asyncio
import subprocess
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.hw.regmap import register_map
from leopard.hw.rtl.engine import Engine
from leopard.hw.rtl.generate import generate, verilog_text
from leopard.model.reference import trace as trace_file
from leopard.sw import codegen
from leopard.sw.driver import Driver
from leopard.sw.golden_backend import GoldenBackend
from leopard.verif import simulate
from leopard.verif.access import AmaranthAccess
from leopard.verif.bench import Bench
from leopard.verif.driver_check import compare_backends
from leopard.verif.scenarios import regression_trace

EXAMPLE = Path(__file__).parent.parent / "sw" / "examples" / "program_job.c"


def test_driver_on_amaranth_sim_equals_golden_backend():
    cfg = preset("tiny")
    trace = regression_trace(cfg, seed=8, causal=True)
    dut = Engine(cfg)
    outcome = {}

    async def bench(ctx):
        access = Bench(cfg, AmaranthAccess(ctx, dut))
        await access.reset_inputs()
        outcome.update(await compare_backends(trace, access))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert outcome["jobs"] == 3 * len(trace.valid_len) - 1
    assert outcome["differences"] == []


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_driver_on_cocotb_equals_golden_backend(sim, tmp_path):
    cfg = preset("small")
    path = tmp_path / "trace.npz"
    trace_file.save(regression_trace(cfg, seed=9), path)
    top, source = verilog_text(cfg, "engine")
    outcome = simulate.run(simulate.build(top, source, sim), "leopard.verif.cocotb_driver", {"trace": str(path)})
    assert outcome["jobs"] > 0 and outcome["differences"] == []


def test_driver_refuses_an_engine_of_another_config():
    driver = Driver(preset("tiny"), GoldenBackend(preset("small")))
    with pytest.raises(LeopardError, match="PARAMS0 register reads"):
        asyncio.run(driver.check_identity())


def test_driver_refuses_out_of_range_thresholds():
    cfg = preset("tiny")
    driver = Driver(cfg, GoldenBackend(cfg))
    with pytest.raises(LeopardError, match="outside the register range"):
        asyncio.run(driver.program(0, cfg.threshold_max + 1, 0.5))


@pytest.mark.parametrize("name", ["tiny", "minilm"])
def test_generated_c_header_compiles_and_matches_the_register_map(name, tmp_path):
    cfg = preset(name)
    generate(cfg, tmp_path, "frontend")
    codegen.write_host_files(tmp_path, register_map(cfg).to_dict())
    binary = tmp_path / "program_job"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-I", str(tmp_path), str(EXAMPLE), "-o", str(binary)],
                   check=True)
    lines = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines()
    regs = register_map(cfg)
    slot = cfg.threshold_regs - 1
    assert lines[0] == f"read 0x{regs['ID'].offset:02X}"
    assert lines[1] == f"write 0x{regs['THRESHOLD'].offset + slot:02X} 0x{-1234 & ((1 << cfg.score_bits) - 1):08X}"
    assert lines[-2] == f"write 0x{regs['CTRL'].offset:02X} 0x00000001"


def test_generated_python_module_matches_the_register_map(tmp_path):
    cfg = preset("minilm")
    generate(cfg, tmp_path, "frontend")
    codegen.write_host_files(tmp_path, register_map(cfg).to_dict())
    constants = {}
    exec((tmp_path / "leopard_regs.py").read_text(), constants)
    regs = register_map(cfg)
    assert constants["THRESHOLD_BASE"] == regs["THRESHOLD"].offset
    assert constants["THRESHOLD_COUNT"] == cfg.threshold_regs
    assert constants["MODE_CAUSAL_MASK"] == 1 << regs["MODE"].field("causal").lsb
    assert constants["EXPECTED"] == regs.constants
