"""Attention trace files (``.npz``): the one format carrying attention problems from training to the
golden model to the RTL. Specified in ``docs/formats.md``; every field is validated on load."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from leopard.hw import fixedpoint
from leopard.hw.config import ConfigError, EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.npz import NpzBlocks, read_npz, write_npz
from leopard.model.reference.golden import Attention, Problems

REQUIRED = ("q", "k", "v", "valid_len", "causal", "threshold", "scale", "config")
OPTIONAL = ("layer", "head", "kv_group", "source")


class TraceError(LeopardError):
    """A malformed or inconsistent trace file."""


@dataclass(frozen=True)
class Trace(Attention):
    """Attention problems with their softmax scales (``[P]``, float: ``s_q · s_k / √D``), the engine
    config they were made for, and where they came from."""

    scale: np.ndarray
    config: EngineConfig
    layer: np.ndarray | None = None
    head: np.ndarray | None = None
    kv_group: np.ndarray | None = None
    """``[P]``: problems with the same value share their keys (grouped-query attention: one key store
    serves the query heads of a group)."""
    source: str | None = None

    def __post_init__(self) -> None:
        validate(self)

    def select(self, indices: list[int]) -> Trace:
        """The trace of the problems ``indices`` only (a minimal trace for one failing problem)."""
        pick = np.asarray(indices, np.int64)
        return dataclasses.replace(
            self, q=self.q[pick], k=self.k[pick], v=self.v[pick], valid_len=self.valid_len[pick],
            threshold=self.threshold[pick], scale=self.scale[pick],
            layer=None if self.layer is None else self.layer[pick],
            head=None if self.head is None else self.head[pick],
            kv_group=None if self.kv_group is None else self.kv_group[pick],
        )

    def problems(self) -> Problems:
        """The problems with their scale registers encoded, ready for the golden model or the RTL."""
        registers = [fixedpoint.encode_scale(self.config, float(s)) for s in self.scale]
        return Problems(
            q=self.q.astype(np.int64),
            k=self.k.astype(np.int64),
            v=self.v.astype(np.int64),
            valid_len=self.valid_len.astype(np.int64),
            causal=self.causal,
            threshold=self.threshold.astype(np.int64),
            scale_mantissa=np.array([r.mantissa for r in registers], np.int64),
            scale_shift=np.array([r.shift for r in registers], np.int64),
        )


def _fail(field: str, message: str) -> TraceError:
    return TraceError(f"field {field!r}: {message}")


def _check_int_array(name: str, value: np.ndarray, ndim: int) -> None:
    if not np.issubdtype(value.dtype, np.integer):
        raise _fail(name, f"must be an integer array, got dtype {value.dtype}")
    if value.ndim != ndim:
        raise _fail(name, f"must have {ndim} dimensions, got shape {value.shape}")


def _check_width(name: str, value: np.ndarray, bits: int) -> None:
    if not np.issubdtype(value.dtype, np.signedinteger):
        raise _fail(name, f"must be a signed integer array, got dtype {value.dtype}")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if value.size and (value.min() < low or value.max() > high):
        bad = value.min() if value.min() < low else value.max()
        raise _fail(name, f"value {bad} outside the {bits}-bit signed range [{low}, {high}]")


def _check_valid_len(valid_len: np.ndarray, count: int, length: int, cfg: EngineConfig) -> None:
    _check_int_array("valid_len", valid_len, 1)
    if valid_len.shape != (count,):
        raise _fail("valid_len", f"must have shape ({count},), got {valid_len.shape}")
    longest = min(length, cfg.max_seq_len)
    if valid_len.min() < 1 or valid_len.max() > longest:
        raise _fail(
            "valid_len",
            f"values must be in [1, {longest}] (array length {length}, max_seq_len "
            f"{cfg.max_seq_len}), got [{valid_len.min()}, {valid_len.max()}]",
        )


def validate(trace: Trace) -> None:
    """Check every field against the trace's config; raise ``TraceError`` naming the first bad one."""
    cfg = trace.config
    for name in ("q", "k", "v"):
        _check_int_array(name, getattr(trace, name), 3)
    count, length, dim = trace.q.shape
    for name in ("k", "v"):
        if getattr(trace, name).shape != trace.q.shape:
            raise _fail(name, f"shape {getattr(trace, name).shape} differs from q's {trace.q.shape}")
    if dim != cfg.head_dim:
        raise _fail("q", f"head dim {dim} differs from the config's head_dim {cfg.head_dim}")
    if count == 0:
        raise _fail("q", "holds no problems")
    _check_width("q", trace.q, cfg.q_bits)
    _check_width("k", trace.k, cfg.k_bits)
    _check_width("v", trace.v, cfg.v_bits)
    _check_valid_len(trace.valid_len, count, length, cfg)
    if not isinstance(trace.causal, bool):
        raise _fail("causal", f"must be a boolean, got {trace.causal!r}")
    _check_int_array("threshold", trace.threshold, 1)
    if trace.threshold.shape != (count,):
        raise _fail("threshold", f"must have shape ({count},), got {trace.threshold.shape}")
    low, high = int(trace.threshold.min()), int(trace.threshold.max())
    if low < cfg.threshold_min or high > cfg.threshold_max:
        bad = low if low < cfg.threshold_min else high
        raise _fail(
            "threshold",
            f"value {bad} outside the {cfg.score_bits}-bit threshold register range "
            f"[{cfg.threshold_min}, {cfg.threshold_max}]",
        )
    if not np.issubdtype(trace.scale.dtype, np.floating) or trace.scale.shape != (count,):
        raise _fail("scale", f"must be a float array of shape ({count},)")
    for value in trace.scale:
        try:
            fixedpoint.encode_scale(cfg, float(value))
        except LeopardError as error:
            raise _fail("scale", str(error)) from None
    for name in ("layer", "head", "kv_group"):
        value = getattr(trace, name)
        if value is not None:
            _check_int_array(name, value, 1)
            if value.shape != (count,):
                raise _fail(name, f"must have shape ({count},), got {value.shape}")
    if trace.kv_group is not None:
        _check_groups(trace)


def _check_groups(trace: Trace) -> None:
    """Problems of one ``kv_group`` must hold the same keys and valid length."""
    _, first, which = np.unique(trace.kv_group, return_index=True, return_inverse=True)
    leader = first[which]
    differs = (trace.k != trace.k[leader]).any(axis=(1, 2)) | (trace.valid_len != trace.valid_len[leader])
    if differs.any():
        bad = int(np.flatnonzero(differs)[0])
        raise _fail("kv_group", f"problem {bad} has other keys or valid_len than problem {int(leader[bad])} "
                                f"of its group {int(trace.kv_group[bad])}")


def load(path: str | Path) -> Trace:
    """Read and validate a trace file; any problem is a ``TraceError`` naming the file and field."""
    path = Path(path)
    fields = read_npz(path, "trace", TraceError)
    try:
        return _from_fields(fields)
    except LeopardError as error:
        raise TraceError(f"trace {path}: {error}") from None


def _from_fields(fields: dict[str, np.ndarray]) -> Trace:
    _check_present(fields)
    cfg, causal, source = _settings(fields)
    return Trace(
        config=cfg, q=fields["q"], k=fields["k"], v=fields["v"], valid_len=fields["valid_len"],
        causal=causal, threshold=fields["threshold"], scale=fields["scale"],
        layer=fields.get("layer"), head=fields.get("head"), kv_group=fields.get("kv_group"), source=source,
    )


def _check_present(names: Iterable[str]) -> None:
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise _fail(missing[0], "missing")


def _settings(fields: dict[str, np.ndarray]) -> tuple[EngineConfig, bool, str | None]:
    """The config, causal flag and source of a trace's fields, checked."""
    config_field = fields["config"]
    if config_field.ndim != 0 or config_field.dtype.kind != "U":
        raise _fail("config", "must be a 0-d string holding the engine config as JSON")
    try:
        cfg = EngineConfig.from_json(str(config_field))
    except ConfigError as error:
        raise _fail("config", str(error)) from None
    causal = fields["causal"]
    if causal.ndim != 0 or causal.dtype != np.bool_:
        raise _fail("causal", "must be a 0-d boolean")
    source = fields.get("source")
    if source is not None and (source.ndim != 0 or source.dtype.kind != "U"):
        raise _fail("source", "must be a 0-d string")
    return cfg, bool(causal), None if source is None else str(source)


STREAMED = ("q", "k", "v")
"""The ``[P, N, D]`` fields ``TraceReader`` reads in blocks of problems; the others it reads whole."""


class TraceReader:
    """A trace file read in blocks of problems, for traces too large to hold in memory: every block is
    a validated ``Trace`` of consecutive problems (``count`` in all, ``length`` tokens)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = NpzBlocks(self.path, "trace", TraceError)
        try:
            self._fields = {name: self._file.read(name) for name in self._file.members
                            if name not in STREAMED}
            shapes = {name: self._file.shape(name) for name in STREAMED if name in self._file.members}
            _check_present(self._file.members)
            self.config, self.causal, self.source = _settings(self._fields)
            for name in STREAMED:
                if len(shapes[name]) != 3:
                    raise _fail(name, f"must have 3 dimensions, got shape {shapes[name]}")
                if shapes[name] != shapes["q"]:
                    raise _fail(name, f"shape {shapes[name]} differs from q's {shapes['q']}")
            self.count, self.length = shapes["q"][:2]
            if self.count == 0:
                raise _fail("q", "holds no problems")
            _check_valid_len(self._fields["valid_len"], self.count, self.length, self.config)
            for name in ("threshold", "scale", "layer", "head", "kv_group"):
                value = self._fields.get(name)
                if value is not None and value.shape != (self.count,):
                    raise _fail(name, f"must have shape ({self.count},), got {value.shape}")
            if self.random_access:
                for name in STREAMED:
                    self._file.check_stored(name)
        except LeopardError as error:
            self._file.close()
            named = str(error).startswith(f"trace {self.path}")
            raise TraceError(str(error) if named else f"trace {self.path}: {error}") from None

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._file.close()

    @property
    def valid_len(self) -> np.ndarray:
        """The valid tokens of every problem."""
        return self._fields["valid_len"].copy()

    @property
    def longest(self) -> int:
        """The most valid tokens of any problem."""
        return int(self._fields["valid_len"].max())

    @property
    def random_access(self) -> bool:
        """Whether ``block`` can read any range (``q``, ``k``, ``v`` stored uncompressed)."""
        return all(self._file.stored(name) for name in STREAMED)

    def blocks(self, problems: int, config: EngineConfig | None = None) -> Iterator[tuple[int, Trace]]:
        """``(first problem index, trace)`` for blocks of ``problems`` consecutive problems, run under
        ``config`` when given (the caller has checked it computes like the trace's)."""
        if self.random_access:
            for start in range(0, self.count, problems):
                yield start, self.block(start, min(start + problems, self.count), config)
            return
        start = 0
        for block in self._file.blocks(STREAMED, problems):
            end = start + block["q"].shape[0]
            yield start, self.ref(start, end, config).trace(block)
            start = end

    def block(self, start: int, end: int, config: EngineConfig | None = None) -> Trace:
        """Problems ``start`` to ``end − 1`` (needs ``random_access``)."""
        rows = {name: self._file.rows(name, start, end) for name in STREAMED}
        return self.ref(start, end, config).trace(rows)

    def ref(self, start: int, end: int, config: EngineConfig | None = None) -> BlockRef:
        """Problems ``start`` to ``end − 1`` as their scalars and where their rows are: ``BlockRef.load``
        reads the block's ``q``, ``k``, ``v`` (elsewhere, in a Dask worker; needs ``random_access``),
        ``BlockRef.trace`` makes the block from rows read here."""
        return BlockRef(self.path, start, end, config or self.config, self.causal, self.source,
                        {name: value[start:end] for name, value in self._fields.items() if value.ndim == 1})


@dataclass(frozen=True)
class BlockRef:
    """Problems ``start`` to ``end − 1`` of the trace file ``path``: their per-problem scalars, and where
    their ``q``, ``k``, ``v`` are."""

    path: Path
    start: int
    end: int
    config: EngineConfig
    causal: bool
    source: str | None
    fields: dict[str, np.ndarray]

    def load(self) -> Trace:
        """The block, its ``q``, ``k``, ``v`` read from the file (stored uncompressed, as ``save`` writes)."""
        with NpzBlocks(self.path, "trace", TraceError) as archive:
            return self.trace({name: archive.rows(name, self.start, self.end) for name in STREAMED})

    def trace(self, arrays: dict[str, np.ndarray]) -> Trace:
        """The block's trace from its ``q``, ``k``, ``v``, validated."""
        part = self.fields
        try:
            return Trace(
                config=self.config, q=arrays["q"], k=arrays["k"], v=arrays["v"],
                valid_len=part["valid_len"], causal=self.causal, threshold=part["threshold"],
                scale=part["scale"], layer=part.get("layer"), head=part.get("head"),
                kv_group=part.get("kv_group"), source=self.source,
            )
        except LeopardError as error:
            raise TraceError(f"trace {self.path}: {error} (in problems {self.start}-{self.end - 1})"
                             ) from None


def save(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` as a byte-reproducible ``.npz`` (fixed zip timestamps), atomically; its members
    stored uncompressed, so that ``TraceReader`` reads any block directly (integer attention data hardly
    compresses: the whole MiniLM test set takes 1.16 GB stored, 0.96 GB deflated)."""
    fields: dict[str, np.ndarray] = {
        "q": trace.q, "k": trace.k, "v": trace.v, "valid_len": trace.valid_len,
        "causal": np.array(trace.causal), "threshold": trace.threshold, "scale": trace.scale,
        "config": np.array(json.dumps(trace.config.to_dict(), sort_keys=True)),
    }
    for name in ("layer", "head", "kv_group"):
        if getattr(trace, name) is not None:
            fields[name] = getattr(trace, name)
    if trace.source is not None:
        fields["source"] = np.array(trace.source)
    write_npz(fields, path, compress=False)
