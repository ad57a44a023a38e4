"""The lever bench (``leopard bench-levers``): each export of a manifest requantized as it says, traced
on the same real sentences, evaluated, and run by the golden and cycle models with the paper's bound and
each hardware lever (``leopard.model.reference.levers``), with each hardware setting's synthesis costs.

The manifest and the synthesis reports are checked field by field before any work (one-line errors
naming the field); each variant's trace and evaluation are reused from its work folder when unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.errors import LeopardError
from leopard.hw.files import read_json, write_atomic, write_json
from leopard.model.reference import levers
from leopard.model.training import export, lever_runs
from leopard.model.training.quantize import QuantSettings
from leopard.model.training.runtime import torch_threads

MANIFEST_SCHEMA = "leopard-levers/1"
SYNTH_SCHEMA = "leopard-synth/1"
VARIANT_KEYS = ("name", "export")
DEFAULT_SENTENCES = 32


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest, every field checked (one-line errors naming the field) before any work."""
    manifest = read_json(path, "manifest")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise LeopardError(
            f"manifest {path}: schema must be {MANIFEST_SCHEMA!r}, got {manifest.get('schema')!r}"
        )
    for field, default, least in (("sentences", DEFAULT_SENTENCES, 1), ("seed", 0, 0)):
        value = manifest.get(field, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise LeopardError(f"manifest {path}: {field!r} must be a whole number of at least {least}, "
                               f"got {value!r}")
    variants = manifest.get("variants")
    if not isinstance(variants, list) or not variants:
        raise LeopardError(f"manifest {path}: 'variants' must be a non-empty list")
    folders: dict[str, str] = {}
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise LeopardError(f"manifest {path}: variant {index} must be an object")
        for key in VARIANT_KEYS:
            if not isinstance(variant.get(key), str) or not variant[key]:
                raise LeopardError(f"manifest {path}: variant {index} has no {key!r} (a non-empty string)")
        folder = _slug(variant["name"])
        if not folder or folder in folders:
            clash = f" of {folders[folder]!r}" if folder in folders else ""
            raise LeopardError(f"manifest {path}: variant name {variant['name']!r} gives the work folder "
                               f"{folder!r}{clash}; rename it")
        folders[folder] = variant["name"]
        quantization = variant.get("quantization", {})
        if not isinstance(quantization, dict) or not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in quantization.values()
        ):
            raise LeopardError(f"manifest {path}: variant {variant['name']!r}: 'quantization' must map "
                               "settings to numbers")
    synthesis = manifest.get("synthesis", {})
    if not isinstance(synthesis, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(n, str) for n in v))
        for v in synthesis.values()
    ):
        raise LeopardError(f"manifest {path}: 'synthesis' must map hardware settings to report paths "
                           "(one, or a list)")
    unknown = sorted(set(synthesis) - set(levers.HARDWARE))
    if unknown:
        raise LeopardError(f"manifest {path}: synthesis names unknown hardware setting {unknown[0]!r}; "
                           f"use one of {', '.join(levers.HARDWARE)}")
    return manifest


def _synthesis_reports(manifest: dict[str, Any], base: Path) -> dict[str, dict[str, Any]]:
    """Per hardware setting, the points of its ``leopard synth`` reports (one or a list), refused unless
    each is such a report, all are for one device, and each was made with its hardware setting."""
    reports, devices = {}, set()
    for hardware, names in manifest.get("synthesis", {}).items():
        merged: dict[str, Any] = {"results": []}
        for name in [names] if isinstance(names, str) else names:
            report = read_json(base / name, "synthesis report")
            if report.get("schema") != SYNTH_SCHEMA or not isinstance(report.get("results"), list):
                raise LeopardError(f"synthesis report {base / name} is not a `leopard synth` report "
                                   f"({SYNTH_SCHEMA})")
            for setting, value in levers.HARDWARE[hardware].items():
                made = report.get("config", {}).get(setting)
                if made != value:
                    raise LeopardError(f"synthesis report {base / name} was made with {setting} {made!r}, "
                                       f"not {value!r} ({hardware})")
            devices.add(report.get("target", {}).get("device"))
            merged = {**report, "results": merged["results"] + report["results"]}
        reports[hardware] = merged
    if len(devices) > 1:
        named = ", ".join(sorted(map(str, devices)))
        raise LeopardError(f"the synthesis reports are for different devices ({named})")
    return reports


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def prepare_variant(export_path: Path, quant: QuantSettings | None, sentences: int, seed: int, work: Path,
                    threads: int) -> lever_runs.Prepared:
    """``lever_runs.prepare`` with ``threads`` torch threads (the same in every worker, so that the
    traces do not depend on where they ran; the process's own count is restored after)."""
    with torch_threads(threads):
        return lever_runs.prepare(export_path, quant, sentences, seed, work, threads)


def bench(path: Path, out: Path, work: Path, progress: Callable[[str], None], *,
          pool: fanout.Pool | None = None, threads: int = 1) -> str:
    """Run the manifest at ``path``, each variant a point on ``pool`` with ``threads`` torch threads;
    write ``out/levers.json`` and ``out/levers.md``; return the table."""
    manifest = load_manifest(path)
    base = path.parent
    reports = _synthesis_reports(manifest, base)
    sentences, seed = manifest.get("sentences", DEFAULT_SENTENCES), manifest.get("seed", 0)
    variants = manifest["variants"]
    settings = []
    for variant in variants:
        where = f"manifest {path}: variant {variant['name']!r}"
        if not (base / variant["export"]).exists():
            raise LeopardError(f"{where}: export {base / variant['export']}: no such file "
                               "(train it first, see docs/levers.md)")
        quant = lever_runs.quant_settings(variant.get("quantization", {}), where)
        if quant is not None:
            try:
                quant.check(export.load(base / variant["export"]).bert.head_dim)
            except LeopardError as error:
                raise LeopardError(f"{where}: {error}") from None
        settings.append((where, quant))
    with pool or fanout.Pool(1) as running:
        progress(f"{len(variants)} variants on {running.describe()}: requantize, trace {sentences} "
                 "sentences, evaluate (minutes each; reused when unchanged)")
        points = [
            fanout.Point(variant["name"], prepare_variant, (base / variant["export"], quant, sentences, seed,
                                                            work / _slug(variant["name"]), threads))
            for variant, (_, quant) in zip(variants, settings, strict=True)
        ]
        prepared = fanout.values(running.run(points, progress, what="variants"), "variants")
    rows, reference = [], None
    for variant, (where, _), made in zip(variants, settings, prepared, strict=True):
        if reference is not None and not np.array_equal(made.trace.valid_len, reference):
            raise LeopardError(f"{where}: its export tokenizes the sentences differently from the first")
        reference = made.trace.valid_len
        rows += levers.variant_rows(variant["name"], made.training, made.evaluation, made.trace.config,
                                    made.trace.problems())
    rows = levers.with_shares(rows)
    costs = levers.synthesis_costs(reports)
    text = levers.table(rows)
    if costs:
        device = next(iter(reports.values()))["target"]["device"]
        text += "\n" + levers.cost_table(costs, device)
    write_json(out / "levers.json", {"manifest": manifest, "rows": rows, "synthesis": costs})
    write_atomic(out / "levers.md", text)
    return text
