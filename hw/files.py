"""Reading JSON inputs with one-line errors, and writing output files so that a failure never leaves a
partial file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from leopard.hw.errors import LeopardError


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def json_text(value: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_json(path: str | Path, value: Any) -> None:
    write_atomic(path, json_text(value))


def parse_json(text: str, what: str, error: type[LeopardError] = LeopardError) -> Any:
    """The value of the JSON ``text``, or ``error`` saying that ``what`` is not valid JSON and where."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{what} is not valid JSON ({problem.msg} at line {problem.lineno})") from None
    except RecursionError:
        raise error(f"{what} is not valid JSON (nested too deeply)") from None


def read_json(path: str | Path, what: str, *, expect: type | None = dict) -> Any:
    """The JSON value in the file ``path`` (a ``what``: "config", "synthesis report"…), of type
    ``expect`` unless that is None; any problem is one ``LeopardError`` line naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        raise LeopardError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise LeopardError(f"{what} {path} is a folder, not a JSON file") from None
    except OSError as problem:
        raise LeopardError(f"cannot read {what} {path}: {problem.strerror}") from None
    except UnicodeDecodeError:
        raise LeopardError(f"{path}: {what} is not a JSON file (not UTF-8 text)") from None
    value = parse_json(text, f"{path}: {what}")
    if expect is not None and not isinstance(value, expect):
        raise LeopardError(f"{path}: {what} must hold a JSON {_JSON_NAMES.get(expect, expect.__name__)}, "
                           f"got {_JSON_NAMES.get(type(value), type(value).__name__)}")
    return value


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
    return staging


def publish_folder(staging: Path, out: Path, *, drop: tuple[str, ...] = ()) -> None:
    """Replace ``out`` by the finished ``staging`` folder, less its entries named in ``drop``."""
    for name in drop:
        shutil.rmtree(staging / name)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
