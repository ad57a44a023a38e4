"""``leopard mutate``: the mutation campaign. Each mutant of ``verif/mutants.py`` is applied to a copy of
the project (the working tree is never touched), the tests that cover the mutated file run there, and
the report says which mutants were killed, by which test, and how long each took.

The copy is imported through a ``leopard`` package of links to its folders put first on
``PYTHONPATH``; simulator builds share the project's cache, which is keyed by the Verilog's hash, so only
the mutated designs are rebuilt."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError
from leopard.hw.files import write_atomic, write_json
from leopard.verif.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hw", "model", "verif", "sw", "scripts")
COPIED = (*PACKAGES, "tests", "pyproject.toml")
TIMEOUT_SECONDS = 120
"""A mutant whose tests run longer than this (a hang) counts as killed by the timeout."""
Progress = Callable[[str], None]


def select(names: list[str] | None) -> list[Mutant]:
    """The mutants named (all when None); an unknown name is refused."""
    if not names:
        return list(MUTANTS)
    known = {mutant.name: mutant for mutant in MUTANTS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise LeopardError(f"unknown mutant {unknown[0]!r}; `leopard mutate --list` names them")
    return [known[name] for name in names]


def _copy_project(into: Path) -> Path:
    """A copy of the project's code and tests in ``into``, and the package of links that imports it."""
    project = into / "project"
    project.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, project / name)
    (project / "results").symlink_to(ROOT / "results")
    package = into / "path" / "leopard"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(project / name)
    return project


def _apply(project: Path, mutant: Mutant) -> None:
    path = project / mutant.path
    text = path.read_text()
    found = text.count(mutant.find)
    if found != 1:
        raise LeopardError(f"mutant {mutant.name}: its code occurs {found} times in {mutant.path} "
                           "(it must occur once); update verif/mutants.py")
    path.write_text(text.replace(mutant.find, mutant.replace))


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)")


def run_tests(project: Path, tests: tuple[str, ...]) -> tuple[str, str | None, float]:
    """Run ``tests`` in ``project``: ``(outcome, first failing test, seconds)``, the outcome ``passed``,
    ``failed``, ``timeout`` or ``error`` (pytest could not run them)."""
    env = {**os.environ, "PYTHONPATH": str(project.parent / "path"),
           "LEOPARD_BUILD_DIR": os.environ.get("LEOPARD_BUILD_DIR", str(ROOT / "build"))}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as running:
        try:
            stdout, stderr = running.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            # pytest and what it started (a hung simulator): the whole session, not pytest alone
            os.killpg(running.pid, signal.SIGKILL)
            running.communicate()
            return "timeout", f"no test ended within {TIMEOUT_SECONDS} s (the design hangs)", \
                time.perf_counter() - started
    run = subprocess.CompletedProcess(command, running.returncode, stdout, stderr)
    seconds = time.perf_counter() - started
    if run.returncode == 0:
        return "passed", None, seconds
    matches = (FAILED.match(line) for line in run.stdout.splitlines())
    failing = next((found.group(1) for found in matches if found), None)
    if run.returncode == 1 and failing:
        return "failed", failing, seconds
    printed = (run.stdout + run.stderr).strip().splitlines()
    return "error", printed[-1] if printed else None, seconds


def campaign(mutants: list[Mutant], out: Path, progress: Progress) -> dict[str, Any]:
    """Run every mutant (after checking that its tests pass on the unmutated copy); write
    ``out/mutation.json``, ``mutation.md`` and ``mutation.timing.json``; return the report."""
    rows, seconds = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="leopard-mutate-") as scratch:
        baseline = _copy_project(Path(scratch) / "baseline")
        every_test = tuple(dict.fromkeys(test for mutant in mutants for test in mutant.tests))
        progress(f"checking that the {len(every_test)} selected tests pass on the unmutated code")
        outcome, failing, took = run_tests(baseline, every_test)
        seconds["unmutated"] = round(took, 1)
        if outcome != "passed":
            raise LeopardError(f"the selected tests do not pass on the unmutated code ({outcome}: {failing})")
        for index, mutant in enumerate(mutants, 1):
            folder = Path(scratch) / f"mutant-{index}"
            project = _copy_project(folder)
            _apply(project, mutant)
            outcome, failing, took = run_tests(project, mutant.tests)
            shutil.rmtree(folder)
            killed = outcome in ("failed", "timeout")
            rows.append({"name": mutant.name, "path": mutant.path, "what": mutant.what,
                         "tests": list(mutant.tests), "outcome": outcome, "killed": killed,
                         "killed_by": failing if killed else None, "equivalent": mutant.equivalent})
            seconds[mutant.name] = round(took, 1)
            verdict = f"killed by {failing}" if killed else outcome if outcome != "passed" else "survived"
            progress(f"[{index}/{len(mutants)}] {mutant.name}: {verdict} ({took:.0f} s)")
    seconds["total"] = round(time.perf_counter() - started, 1)
    report = summary(rows)
    write_json(out / "mutation.json", report)
    write_atomic(out / "mutation.md", table(report))
    write_json(out / "mutation.timing.json", {"seconds": seconds})
    return report


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Kill rate over the non-equivalent mutants, and what is wrong: a non-equivalent survivor, an
    equivalent mutant that was killed (so it was not equivalent), or tests that could not run."""
    real = [row for row in rows if not row["equivalent"]]
    problems = [f"{row['name']}: survived" for row in real if row["outcome"] == "passed"]
    problems += [f"{row['name']}: marked equivalent but killed by {row['killed_by']}"
                 for row in rows if row["equivalent"] and row["killed"]]
    problems += [f"{row['name']}: tests could not run ({row['killed_by']})" for row in rows
                 if row["outcome"] == "error"]
    return {
        "schema": "leopard-mutation/1",
        "mutants": len(rows), "rtl": sum(row["path"].startswith("hw/rtl/") for row in rows),
        "models": sum(not row["path"].startswith("hw/rtl/") for row in rows),
        "non_equivalent": len(real), "killed": sum(row["killed"] for row in real),
        "kill_rate": round(sum(row["killed"] for row in real) / len(real), 4) if real else None,
        "equivalent": [{"name": row["name"], "reason": row["equivalent"], "survived": not row["killed"]}
                       for row in rows if row["equivalent"]],
        "problems": problems, "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    """The campaign as Markdown: the kill rate, then one row per mutant."""
    lines = [
        f"# Mutation campaign: {report['killed']} of {report['non_equivalent']} non-equivalent mutants "
        f"killed ({report['rtl']} in the RTL, {report['models']} in the models; "
        f"{len(report['equivalent'])} equivalent)", "",
        "| mutant | file | what it breaks | outcome | killed by |", "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        outcome = "equivalent, survived" if row["equivalent"] and not row["killed"] else (
            "killed" if row["killed"] else row["outcome"])
        lines.append(f"| {row['name']} | {row['path']} | {row['what']} | {outcome} | "
                     f"{row['killed_by'] or '–'} |")
    if report["equivalent"]:
        lines += ["", "Equivalent mutants (no result can change):", ""]
        lines += [f"- {item['name']}: {item['reason']}" for item in report["equivalent"]]
    if report["problems"]:
        lines += ["", "Problems:", ""] + [f"- {problem}" for problem in report["problems"]]
    return "\n".join(lines) + "\n"
