"""Reading JSON inputs with one-line errors, and writing output files so that a failure never leaves a
partial file behind: each file atomically, and all the files of one command together
(``all_or_nothing``)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from leopard.hw.errors import LeopardError


@dataclass
class _OutputSet:
    """What one ``all_or_nothing`` block has written so far: files staged beside their targets,
    folders waiting to be published, folders it created, and staging folders written in place."""

    files: dict[Path, Path] = field(default_factory=dict)
    folders: list[tuple[Path, Path]] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)
    in_place: list[Path] = field(default_factory=list)

    def writes_in_place(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.in_place)

    def commit(self) -> None:
        for target, temporary in self.files.items():
            os.replace(temporary, target)
        for staging, out in self.folders:
            _replace_folder(staging, out)

    def discard(self) -> None:
        for temporary in self.files.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()


_CURRENT: contextvars.ContextVar[_OutputSet | None] = contextvars.ContextVar("leopard_outputs", default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Inside this block every ``write_atomic`` (but those ``now``) stages its file beside the target and
    every ``publish_folder`` waits; when the block ends normally all of them are renamed into place,
    when it raises none is, the staged files are removed and so are the folders it created. Blocks
    nest: an inner block commits on its own."""
    outputs = _OutputSet()
    token = _CURRENT.set(outputs)
    try:
        yield
    except BaseException:
        outputs.discard()
        raise
    else:
        outputs.commit()
    finally:
        _CURRENT.reset(token)


def _make_parents(folder: Path, outputs: _OutputSet | None) -> None:
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    if outputs is not None:
        outputs.created.extend(reversed(missing))


def write_atomic(path: str | Path, data: bytes | str, *, now: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it: at once
    when ``now`` (build caches, checkpoints, a scratch file another process reads) or outside an
    ``all_or_nothing`` block, else when that block succeeds."""
    path = Path(path)
    outputs = _CURRENT.get()
    if now or (outputs is not None and outputs.writes_in_place(path)):
        outputs = None
    payload = data.encode() if isinstance(data, str) else data
    try:
        _make_parents(path.parent, outputs)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as problem:
        raise LeopardError(f"cannot write {path}: {problem.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.chmod(temporary, 0o666 & ~_umask())
        if outputs is None:
            os.replace(temporary, path)
            return
        previous = outputs.files.pop(path, None)
        if previous is not None:
            os.unlink(previous)
        outputs.files[path] = Path(temporary)
    except BaseException as problem:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(problem, OSError):
            raise LeopardError(f"cannot write {path}: {problem.strerror}") from None
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_text(value: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_json(path: str | Path, value: Any, *, now: bool = False) -> None:
    write_atomic(path, json_text(value), now=now)


def parse_json(text: str, what: str, error: type[LeopardError] = LeopardError) -> Any:
    """The value of the JSON ``text``, or ``error`` saying that ``what`` is not valid JSON and where."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{what} is not valid JSON ({problem.msg} at line {problem.lineno})") from None
    except RecursionError:
        raise error(f"{what} is not valid JSON (nested too deeply)") from None


def open_input(path: Path, what: str, kind: str, error: type[LeopardError] = LeopardError) -> IO[bytes]:
    """``path`` opened for reading (a ``what`` that should be ``kind``, e.g. "an .npz file"); a missing
    file, a folder or an unreadable file is one ``error`` line naming it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise error(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not {kind}") from None
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror or problem}") from None


def read_json(path: str | Path, what: str, *, expect: type | None = dict) -> Any:
    """The JSON value in the file ``path`` (a ``what``: "config", "synthesis report"…), of type
    ``expect`` unless that is None; any problem is one ``LeopardError`` line naming the file."""
    path = Path(path)
    try:
        with open_input(path, what, "a JSON file") as stream:
            text = stream.read().decode()
    except UnicodeDecodeError:
        raise LeopardError(f"{path}: {what} is not a JSON file (not UTF-8 text)") from None
    value = parse_json(text, f"{path}: {what}")
    if expect is not None and not isinstance(value, expect):
        raise LeopardError(f"{path}: {what} must hold a JSON {_JSON_NAMES.get(expect, expect.__name__)}, "
                           f"got {_JSON_NAMES.get(type(value), type(value).__name__)}")
    return value


def build_dir() -> Path:
    """Where generated files are cached (simulator builds, Verilog): ``$LEOPARD_BUILD_DIR``, by default
    ``build``."""
    return Path(os.environ.get("LEOPARD_BUILD_DIR", "build"))


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def staging_folder(out: Path, *, fresh: bool = False) -> Path:
    """``OUT.partial``, where a folder output is assembled before ``publish_folder`` renames it to
    ``out`` (emptied first when ``fresh``); refused when ``out`` exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise LeopardError(f"--out {out} exists and is not a folder")
    staging = out.with_name(out.name + ".partial")
    if fresh:
        shutil.rmtree(staging, ignore_errors=True)
    outputs = _CURRENT.get()
    if outputs is not None:
        outputs.in_place.append(staging)
    return staging


def publish_folder(staging: Path, out: Path, *, drop: tuple[str, ...] = ()) -> None:
    """Replace ``out`` by the finished ``staging`` folder, less its entries named in ``drop``: when the
    enclosing ``all_or_nothing`` block succeeds, or at once outside one."""
    for name in drop:
        shutil.rmtree(staging / name)
    outputs = _CURRENT.get()
    if outputs is None:
        _replace_folder(staging, out)
    else:
        outputs.folders.append((staging, out))


def _replace_folder(staging: Path, out: Path) -> None:
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
