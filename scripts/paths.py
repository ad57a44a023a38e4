"""What each command reads and writes, checked before any work starts: every output must be writable
where it is and of the right kind (a file or a folder), and no output may be, or hold, one of the
command's inputs. Each command declares its paths with ``declare``; ``check`` runs before the command.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from leopard.hw.errors import LeopardError


@dataclass(frozen=True)
class Output:
    """The output named by option ``dest`` (given as ``flag`` when that is not ``--dest``): a file (with
    ``beside``, the suffixes of the files written next to it, e.g. ``.md`` for ``OUT.json`` → ``OUT.md``)
    or a folder."""

    dest: str
    folder: bool = False
    beside: tuple[str, ...] = ()
    default: str | None = None
    flag: str | None = None


@dataclass(frozen=True)
class Paths:
    """A command's inputs (option names of files or folders it reads) and outputs."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[Output, ...] = ()


def declare(parser: argparse.ArgumentParser, *, inputs: tuple[str, ...] = (),
            outputs: tuple[Output, ...] = ()) -> None:
    """Record on ``parser`` which of its options are input and output paths."""
    parser.set_defaults(paths=Paths(inputs, outputs))


def _option(dest: str) -> str:
    return dest if dest in {"export", "run_dir", "manifest"} else "--" + dest.replace("_", "-")


def _given(args: argparse.Namespace, dest: str, default: str | None = None) -> Path | None:
    value = getattr(args, dest, None) or default
    return None if value is None else Path(value)


def output_files(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """Every output path the command will write: (option, path, is a folder)."""
    paths: Paths = getattr(args, "paths", Paths())
    found = []
    for output in paths.outputs:
        path = _given(args, output.dest, output.default)
        if path is None:
            continue
        option = output.flag or _option(output.dest)
        found.append((option, path, output.folder))
        found += [(option, path.with_suffix(suffix), False) for suffix in output.beside]
    return found


def check(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that cannot be written or that would replace an input."""
    paths: Paths = getattr(args, "paths", Paths())
    inputs = [(_option(dest), path) for dest in paths.inputs
              if (path := _given(args, dest)) is not None and path.exists()]
    for option, path, folder in output_files(args):
        _check_writable(option, path, folder)
        for input_option, source in inputs:
            if _same(path, source):
                raise LeopardError(f"{option} {path} is the input {input_option} {source}; "
                                   "write the output elsewhere")
            if folder and source.resolve().is_relative_to(path.resolve()):
                raise LeopardError(f"{option} {path} holds the input {input_option} {source}; "
                                   "write the output elsewhere")


def _same(path: Path, source: Path) -> bool:
    if path.exists():
        return os.path.samefile(path, source)
    return path.resolve() == source.resolve()


def _check_writable(option: str, path: Path, folder: bool) -> None:
    if path.is_dir() and not folder:
        raise LeopardError(f"{option} {path} is a folder; give a file path")
    if path.exists() and folder and not path.is_dir():
        raise LeopardError(f"{option} {path} exists and is not a folder; give a folder path")
    for ancestor in path.absolute().parents:
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            raise LeopardError(f"{option} {path}: {ancestor} is a file, not a folder")
        try:
            handle, probe = tempfile.mkstemp(dir=ancestor, prefix=".leopard-probe.")
        except OSError as problem:
            raise LeopardError(f"{option} {path}: cannot write in {ancestor} ({problem.strerror}); "
                               "write the output elsewhere") from None
        os.close(handle)
        os.unlink(probe)
        return
