"""``.npz`` archives of named arrays: written byte-reproducibly, read without pickles and with one-line
errors; an archive too large for memory is read its small members whole and its large ones as blocks of
rows, decompressed as they are read (so memory holds one block of each streamed member at a time), or
any range of rows read directly when they are stored uncompressed."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from leopard.hw.errors import LeopardError
from leopard.hw.files import open_input, write_atomic
from leopard.hw.resources import check_memory

NPY_MAGIC = b"\x93NUMPY"

CHECK_CHUNK = 16 << 20
"""Bytes read at a time when checking a stored member's CRC."""

LOCAL_HEADER = 30
"""Bytes of a zip member's local header before its file name and extra field."""


class NpzBlocks:
    """An open ``.npz`` file; errors are one ``error`` line naming the file (a ``what``) and member."""

    def __init__(self, path: str | Path, what: str, error: type[LeopardError] = LeopardError) -> None:
        self.path, self.what, self.error = Path(path), what, error
        self._stream = open_input(self.path, what, "an .npz file", error)
        try:
            if self._stream.read(len(NPY_MAGIC)) == NPY_MAGIC:
                raise error(f"{what} {self.path} is a bare .npy array, not an .npz archive of named arrays")
            self._stream.seek(0)
            self._archive = zipfile.ZipFile(self._stream)
        except zipfile.BadZipFile:
            self._stream.close()
            raise error(f"{what} {self.path} is not an .npz file (not a zip archive of .npy arrays)"
                        ) from None
        except OSError as problem:
            self._stream.close()
            raise error(f"cannot read {what} {self.path}: {problem.strerror or problem}") from None
        except LeopardError:
            self._stream.close()
            raise
        self._layouts: dict[str, tuple[int, tuple[int, ...], np.dtype]] = {}
        self.members = {}
        for info in self._archive.infolist():
            if not info.filename.endswith(".npy"):
                self.close()
                raise error(f"{what} {self.path}: member {info.filename!r} is not a .npy array")
            self.members[info.filename.removesuffix(".npy")] = info

    def __enter__(self) -> NpzBlocks:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._archive.close()
        self._stream.close()

    def _ends_early(self, name: str) -> LeopardError:
        return self.error(f"{self.what} {self.path}: member {name!r} ends early: the file is damaged, "
                          "write it again")

    def _damaged(self, name: str, problem: Exception) -> LeopardError:
        detail = str(problem).splitlines()[0] if str(problem) else ""
        return self.error(f"{self.what} {self.path}: member {name!r} is damaged or not a plain array "
                          f"({type(problem).__name__}: {detail})")

    def read(self, name: str, *, checked: bool = False) -> np.ndarray:
        """The whole member ``name`` (refused when it would not fit in memory, unless the caller has
        ``checked``)."""
        info = self.members[name]
        if not checked:
            check_memory(info.file_size, f"reading {name} of {self.what} {self.path}",
                         "use a smaller file or raise the limit")
        try:
            with self._open(name) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except LeopardError:
            raise
        except Exception as problem:  # a damaged member fails in zlib, zipfile, the header parser or NumPy
            raise self._damaged(name, problem) from None

    def _header(self, name: str, member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
        try:
            version = np.lib.format.read_magic(member)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if reader is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = reader(member)
        except Exception as problem:
            raise self._damaged(name, problem) from None
        if fortran or dtype.hasobject or not shape:
            raise self.error(f"{self.what} {self.path}: member {name!r} must be a C-ordered plain array "
                             "of rows")
        return shape, dtype

    def stored(self, name: str) -> bool:
        """Whether member ``name`` is stored uncompressed (``rows`` reads any range of it)."""
        return self.members[name].compress_type == zipfile.ZIP_STORED

    def rows(self, name: str, start: int, end: int) -> np.ndarray:
        """Rows ``start`` to ``end − 1`` of the stored member ``name``, read from the file alone."""
        if name not in self._layouts:
            info = self.members[name]
            self._stream.seek(info.header_offset)
            local = self._stream.read(LOCAL_HEADER)
            if len(local) != LOCAL_HEADER or local[:4] != b"PK\x03\x04":
                raise self.error(f"{self.what} {self.path}: member {name!r} has a damaged zip header")
            begin = (info.header_offset + LOCAL_HEADER + int.from_bytes(local[26:28], "little")
                     + int.from_bytes(local[28:30], "little"))
            self._stream.seek(begin)
            shape, dtype = self._header(name, self._stream)
            offset = self._stream.tell()
            if offset - begin + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > info.file_size:
                raise self._ends_early(name)
            self._layouts[name] = offset, shape, dtype
        offset, shape, dtype = self._layouts[name]
        row = int(np.prod(shape[1:], dtype=np.int64))
        self._stream.seek(offset + start * row * dtype.itemsize)
        data = self._stream.read((end - start) * row * dtype.itemsize)
        if len(data) != (end - start) * row * dtype.itemsize:
            raise self._ends_early(name)
        return np.frombuffer(data, dtype).reshape(end - start, *shape[1:])

    def _open(self, name: str) -> IO[bytes]:
        try:
            return self._archive.open(self.members[name])
        except Exception as problem:  # a damaged local header fails in zipfile or the file system
            raise self._damaged(name, problem) from None

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of member ``name``, from its header alone."""
        with self._open(name) as member:
            return self._header(name, member)[0]

    def check_stored(self, name: str) -> None:
        """Read the stored member ``name`` once through, so that zipfile compares its CRC-32 with the
        archive's at the end (``rows`` reads without checking it)."""
        with self._open(name) as member:
            try:
                while member.read(CHECK_CHUNK):
                    pass
            except Exception as problem:  # BadZipFile on a CRC mismatch, or a read error
                raise self._damaged(name, problem) from None

    def blocks(self, names: tuple[str, ...], rows: int) -> Iterator[dict[str, np.ndarray]]:
        """Blocks of ``rows`` leading-axis rows of the members ``names`` (same row count), in order."""
        opened = {}
        for name in names:
            opened[name] = self._open(name)
        try:
            layouts = {name: self._header(name, member) for name, member in opened.items()}
            count = layouts[names[0]][0][0]
            for start in range(0, count, rows):
                block = {}
                for name, member in opened.items():
                    shape, dtype = layouts[name]
                    take = min(rows, count - start)
                    size = take * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
                    try:
                        data = member.read(size)
                    except Exception as problem:
                        raise self._damaged(name, problem) from None
                    if len(data) != size:
                        raise self._ends_early(name)
                    block[name] = np.frombuffer(data, dtype).reshape(take, *shape[1:])
                yield block
        finally:
            for member in opened.values():
                member.close()


def read_npz(path: str | Path, what: str, error: type[LeopardError] = LeopardError) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` (a ``what``: "trace", "export"), read without pickles;
    refused before decompressing when they would not fit in memory; any problem with the file is one
    ``error`` line naming it."""
    with NpzBlocks(path, what, error) as archive:
        check_memory(sum(info.file_size for info in archive.members.values()), f"reading {what} {path}",
                     "use a smaller file or raise the limit")
        return {name: archive.read(name, checked=True) for name in archive.members}


def write_npz(fields: dict[str, np.ndarray], path: str | Path, *, compress: bool = True) -> None:
    """An ``.npz`` NumPy reads back, identical bytes for identical arrays; replaces ``path`` atomically.
    Without ``compress`` the members are stored as they are, so that readers can memory-map them."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, array in fields.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            archive.writestr(info, member.getvalue())
    write_atomic(path, buffer.getvalue())
