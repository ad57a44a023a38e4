"""``leopard compare``: leopard and the peers (``model/reference/policies.py``) on the same model, the
same test sentences and the same quantization, with accuracy (95 % bootstrap intervals, paired
differences), scores computed in full, QK bit operations, memory bits read, energy
(``model/reference/energy.py``) and, for the bit-serial engine, its exact cycles.

Rows: the engine in dense mode (the reference of every reduction) and a bit-parallel dense unit (the
same arithmetic, so the same predictions; its counts follow from the dense run's pairs); leopard with
the paper's bound (the export requantized as the paper does, one scale per head from the largest value,
which dense and the peers use too), with the default levers (keys requantized at the 99th percentile
with per-channel scales; zero-plane skipping off, as by default), and with those levers and zero-plane
skipping (the lever bench's fastest row within 0.2 points of the dense control, ``results/levers``);
top-k with ``k`` per (layer, head) the default-levers row's mean kept keys per query there on the
validation sentences; SpAtten and Sanger with their knobs tuned on a validation split carved from the
training sentences (``tune``), never on the test set, and optionally also with weights fine-tuned under
their own masks (``peer_finetune``). Every policy runs the whole model itself, so SpAtten's cascade
shapes its own later layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from leopard.hw import fanout
from leopard.hw.errors import LeopardError
from leopard.model.reference import confidence, energy, levers, policies
from leopard.model.training import capture, data, evaluate, export, peer_finetune
from leopard.model.training.bert import dense_core
from leopard.model.training.policy_core import PolicyCore, Tally
from leopard.model.training.quantize import QuantSettings
from leopard.model.training.runtime import torch_threads
from leopard.model.training.train import requantize

SCHEMA = "leopard-compare/1"
PAPER_QUANTIZATION = QuantSettings(clip_percentile=100.0, key_block=0, clip_q_percentile=100.0)
"""The paper's quantizer: one scale per head from the largest value. Dense, the paper-bound row and the
peers run on it, whatever the export was quantized with."""
SANGER_KNOBS = {"threshold": (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
                "bits": (4, 3, 2)}
"""Sanger's predicted-probability threshold, then its predictor's bits (4 in the paper), each tried from
the mildest value until one misses the budget."""
SPATTEN_KNOBS = {
    "token_keep": (1.0, 0.8, 0.6, 0.4, 0.2, 0.1),
    "head_keep": (1.0, 0.9, 0.8, 0.7, 0.5, 0.3),
    "pq_threshold": (1.0, 0.5, 0.3, 0.2, 0.1, 0.0),
}
"""SpAtten's knobs, searched one after the other in this order, each from its mildest value (1.0 keeps
everything; ``pq_threshold`` 1.0 recomputes every row) until one misses the budget."""

Progress = Callable[[str], None]
Trial = Callable[[dict[str, float], policies.Policy], dict[str, Any]]


class Engine:
    """An export's model and the hardware core that quantizes its attention as the engine does."""

    def __init__(self, made: export.Export) -> None:
        self.made = made
        self.model = made.classifier()
        self.core = made.hardware_core(prune=False)

    @property
    def layers(self) -> int:
        return self.made.bert.num_hidden_layers


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One policy's run: which sentences it got right and what it did."""

    correct: np.ndarray
    tally: Tally

    def accuracy(self) -> float:
        return 100.0 * float(self.correct.mean())


def run(engine: Engine, policy: policies.Policy, ids: list[list[int]], labels: np.ndarray) -> Outcome:
    """``policy`` as the attention of ``engine``'s model on the sentences ``ids``."""
    tally = Tally()
    predictions, _ = evaluate.predict(
        engine.model, ids, lambda: PolicyCore(engine.core, policy, tally, engine.layers))
    return Outcome(predictions == labels, tally)


def head_energy(outcome: Outcome) -> float:
    """Whole-head on-chip pJ per problem."""
    return outcome.tally.counts.energies()["head"] / outcome.tally.problems


def search(
    start: dict[str, float], knobs: dict[str, tuple[float, ...]], make: Callable[..., policies.Policy],
    trial: Trial,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Coordinate search: each knob in turn, from its mildest value towards its harshest, keeping the
    least ``head_pj`` among the trials that are ``feasible`` and stopping at the first that is not."""
    best, best_energy = dict(start), float("inf")
    trials: dict[tuple[float, ...], dict[str, Any]] = {}
    for knob, values in knobs.items():
        for value in values:
            chosen = {**best, knob: value}
            key = tuple(chosen.values())
            if key not in trials:
                trials[key] = {**chosen, **trial(chosen, make(**chosen))}
            if not trials[key]["feasible"]:
                break
            if trials[key]["head_pj"] <= best_energy:
                best, best_energy = chosen, trials[key]["head_pj"]
    return best, list(trials.values())


def run_on(made: export.Export, policy: policies.Policy, ids: list[list[int]], labels: np.ndarray,
           threads: int) -> Outcome:
    """``run`` on ``made``'s engine with ``threads`` torch threads: one point of the comparison."""
    with torch_threads(threads):
        return run(Engine(made), policy, ids, labels)


def tune_peer(made: export.Export, peer: str, ids: list[list[int]], labels: np.ndarray, floor: float,
              threads: int, progress: Progress) -> dict[str, Any]:
    """``peer``'s (``sanger`` or ``spatten``) knobs: the least whole-head energy on the validation
    sentences ``ids`` at an accuracy of at least ``floor`` percent (``search``); the chosen knobs and
    every trial."""
    with torch_threads(threads):
        engine = Engine(made)

        def trial(knobs: dict[str, float], policy: policies.Policy) -> dict[str, Any]:
            outcome = run(engine, policy, ids, labels)
            accuracy, cost = outcome.accuracy(), head_energy(outcome)
            shown = ", ".join(f"{knob} {value:g}" for knob, value in knobs.items())
            progress(f"compare: validation {policy.name} ({shown}): {accuracy:.2f} %, "
                     f"{cost / 1000:.2f} nJ per head")
            return {"accuracy": round(accuracy, 4), "head_pj": round(cost, 3), "feasible": accuracy >= floor}

        knobs = SANGER_KNOBS if peer == "sanger" else SPATTEN_KNOBS
        make = policies.Sanger if peer == "sanger" else partial(policies.SpAtten, layers=engine.layers)
        chosen, trials = search({knob: values[0] for knob, values in knobs.items()}, knobs, make, trial)
    return {"chosen": chosen, "trials": trials}


def float_correct(made: export.Export, ids: list[list[int]], labels: np.ndarray, threads: int) -> np.ndarray:
    """Per sentence: right under ``made``'s weights in float with dense attention."""
    with torch_threads(threads):
        predictions, _ = evaluate.predict(made.classifier(), ids, lambda: dense_core)
    return predictions == labels


def finetuned_run(made: export.Export, dataset: data.Dataset, policy: policies.Policy, steps: int,
                  ids: list[list[int]], labels: np.ndarray, threads: int,
                  progress: Progress) -> tuple[Outcome, np.ndarray]:
    """``policy`` on ``made``'s weights fine-tuned ``steps`` steps under it (``peer_finetune``), and
    which sentences those weights get right in float."""
    with torch_threads(threads):
        tuned = peer_finetune.finetune(made, dataset, policy, steps, progress)
        renamed = dataclasses.replace(policy, name=f"{policy.name}, fine-tuned")
        return run(Engine(tuned), renamed, ids, labels), float_correct(tuned, ids, labels, threads)


def validation_split(examples: data.Examples, count: int, seed: int) -> data.Examples:
    """``count`` training sentences, the first of ``default_rng(seed)``'s permutation."""
    return examples.take(capture.pick(examples, count, seed, option="--validation-sentences",
                                      what="training sentences"))


def top_k(tally: Tally) -> np.ndarray:
    """``[layers, heads]`` mean kept keys per query, rounded, at least 1."""
    if tally.kept_per_head is None or tally.rows_per_head is None:
        raise LeopardError("top-k needs a run that saw at least one problem")
    return np.maximum(np.rint(tally.kept_per_head / np.maximum(tally.rows_per_head, 1)), 1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Accuracies:
    """Per test sentence: correct under the same weights in float with dense attention, and under the
    dense control (when given)."""

    same_weights: np.ndarray
    control: np.ndarray | None
    seed: int


def row(name: str, kind: str, outcome: Outcome, counts: energy.Counts, dense: Outcome,
        reference: Accuracies, knobs: dict[str, Any]) -> dict[str, Any]:
    """One policy's figures per problem, its reductions against the engine's dense mode (``dense``) and
    its accuracy with 95 % intervals; ``speedup`` (exact cycles) for bit-serial rows, ``modelled_speedup``
    (the QK bit-op reduction) for the others."""
    tally, problems = outcome.tally, outcome.tally.problems
    energies, dense_energies = counts.energies(), dense.tally.counts.energies()
    seed = reference.seed
    figures: dict[str, Any] = {
        "policy": name, "kind": kind, "knobs": knobs,
        "accuracy": confidence.accuracy(outcome.correct, seed),
        "difference_vs_same_weights_float": confidence.paired_difference(
            outcome.correct, reference.same_weights, seed),
        "kept_fraction": round(tally.kept / tally.pairs, 6),
        "full_fraction": round(tally.full / tally.pairs, 6),
        "qk_bit_ops_per_problem": round(counts.events["qk_bit_ops"] / problems, 1),
        "qk_bit_op_reduction": round(
            dense.tally.counts.events["qk_bit_ops"] / counts.events["qk_bit_ops"], 4),
        "memory_bits_read_per_problem": round(
            sum(n for (_, priced), n in counts.priced.items() if priced == "sram_bits") / problems, 1),
        "dram_bits_per_problem": round(counts.priced[("off_chip", "dram_bits")] / problems, 1),
        "energy_pj_per_problem": {part: round(value / problems, 3) for part, value in energies.items()},
        "energy_reduction": {part: round(dense_energies[part] / energies[part], 4)
                             for part in ("front", "head", "total")},
        "events_per_problem": {event: round(n / problems, 2) for event, n in sorted(counts.events.items())},
    }
    if reference.control is not None:
        figures["difference_vs_dense_control"] = confidence.paired_difference(
            outcome.correct, reference.control, seed)
    if kind == "bit-serial":
        figures["cycles"] = {"early_termination": tally.cycles, "dense": dense.tally.cycles}
        figures["cycles_head"] = {"early_termination": tally.cycles_head, "dense": dense.tally.cycles_head}
        figures["speedup"] = round(dense.tally.cycles / tally.cycles, 4)
        figures["speedup_head"] = round(dense.tally.cycles_head / tally.cycles_head, 4)
    else:
        figures["modelled_speedup"] = figures["qk_bit_op_reduction"]
    return figures


def compare(
    made: export.Export, test_count: int | None, validation_count: int, seed: int, budget: float,
    progress: Progress, control: export.Export | None = None, finetune_steps: int = 0,
    pool: fanout.Pool | None = None, threads: int = 1,
) -> dict[str, Any]:
    """Every policy on ``test_count`` test sentences (default all; else the first of
    ``default_rng(seed)``'s permutation, as ``leopard trace`` picks them): the report. With
    ``finetune_steps``, each peer also runs with its weights fine-tuned that many steps under its own
    mask (``peer_finetune``), its accuracy change paired against those weights in float. Each run is a
    point on ``pool`` with ``threads`` torch threads, so the report is the same on any pool."""
    dataset = data.load_dataset(made.data)
    if dataset.sha256 != made.data_sha256:
        raise LeopardError(f"data {made.data.data} differs from the data the export was trained on")
    test = dataset.test
    if test_count is not None:
        test = test.take(capture.pick(test, test_count, seed))
    validation = validation_split(dataset.train, validation_count, seed)
    tokenizer = made.text_tokenizer()
    test_ids, validation_ids = tokenizer.encode(test.texts), tokenizer.encode(validation.texts)

    progress("compare: quantizing as the paper does and with the default levers")
    plain = requantize(made, dataset, PAPER_QUANTIZATION)
    base = dataclasses.replace(plain, config=plain.config.replace(skip_zero_planes=False))
    levered = requantize(made, dataset, QuantSettings(
        clip_percentile=levers.DEFAULT_CLIP_PERCENTILE, key_block=levers.DEFAULT_KEY_BLOCK))
    lever_policy = policies.Leopard(levered.config.replace(skip_zero_planes=False), "leopard, default levers")
    lever_knobs = {"clip_percentile": levers.DEFAULT_CLIP_PERCENTILE, "key_block": levers.DEFAULT_KEY_BLOCK}

    with pool or fanout.Pool(1) as running:
        progress(f"compare: {len(validation_ids)} validation and {len(test_ids)} test sentences on "
                 f"{running.describe()}")
        shared_base, shared_levered = running.share(base), running.share(levered)
        val = (validation_ids, validation.labels, threads)
        dense_run, leopard_run = fanout.values(running.run([
            fanout.Point("validation: dense", run_on, (shared_base, policies.Dense(), *val)),
            fanout.Point("validation: leopard, default levers", run_on, (shared_levered, lever_policy, *val)),
        ], progress, what="runs"), "runs")
        dense, leopard = dense_run.accuracy(), leopard_run.accuracy()
        allowed = max(budget, dense - leopard)
        progress(f"compare: validation: dense {dense:.2f} %, leopard with levers {leopard:.2f} %; the peers "
                 f"may lose {allowed:.2f} points")
        floor = dense - allowed - 1e-9
        sanger, spatten = fanout.values(running.run([
            fanout.Point(f"tuning {peer}", tune_peer, (shared_base, peer, *val[:2], floor, threads, progress),
                         cost=cost)
            for peer, cost in (("sanger", 1.0), ("spatten", 2.0))
        ], progress, what="searches"), "searches")
        tuning = {
            "sentences": len(validation_ids), "allowed_loss_points": round(allowed, 4),
            "dense_accuracy": round(dense, 4), "leopard_accuracy": round(leopard, 4),
            "dense_head_pj": round(head_energy(dense_run), 3),
            "leopard_head_pj": round(head_energy(leopard_run), 3),
            "top_k": top_k(leopard_run.tally).tolist(), "sanger": sanger, "spatten": spatten,
        }

        k = np.array(tuning["top_k"], np.int64)
        peers: list[tuple[policies.Policy, dict[str, Any]]] = [
            (policies.TopK(k), {"k": k.tolist()}),
            (policies.SpAtten(layers=made.bert.num_hidden_layers, **spatten["chosen"]), spatten["chosen"]),
            (policies.Sanger(**sanger["chosen"]), sanger["chosen"]),
        ]
        runs: list[tuple[str, Any, policies.Policy, dict[str, Any]]] = [
            ("bit-serial", shared_base, policies.Dense(), {}),
            ("bit-serial", shared_base, policies.Leopard(base.config, "leopard, paper bound"), {}),
            ("bit-serial", shared_levered, lever_policy, {**lever_knobs, "skip_zero_planes": False}),
            ("bit-serial", shared_levered, policies.Leopard(levered.config.replace(skip_zero_planes=True),
                                                            "leopard, levers + zero-plane skipping"),
             {**lever_knobs, "skip_zero_planes": True}),
            *(("peer", shared_base, policy, knobs) for policy, knobs in peers),
        ]
        test_args = (test_ids, test.labels, threads)
        points = [fanout.Point(f"test: {policy.name}", run_on, (made_, policy, *test_args), cost=1.0)
                  for _, made_, policy, _ in runs]
        points += [fanout.Point(f"test: float, {name}", float_correct, (weights, *test_args))
                   for name, weights in (("same weights", shared_base), ("dense control", control))
                   if weights is not None]
        tuned_peers = peers if finetune_steps else []
        shared_data = running.share(dataset) if tuned_peers else None
        tuned = [fanout.Point(f"fine-tune and test: {policy.name}", finetuned_run,
                              (shared_base, shared_data, policy, finetune_steps, *test_args, progress),
                              cost=10.0)
                 for policy, _ in tuned_peers]
        results = fanout.values(running.run(points + tuned, progress, what="runs"), "runs")

    outcomes, rest = results[:len(runs)], results[len(runs):]
    same_weights, rest = rest[0], rest[1:]
    control_correct, tuned_results = (rest[0], rest[1:]) if control is not None else (None, rest)
    reference = Accuracies(same_weights, control_correct, seed)
    dense_outcome = outcomes[0]
    rows = []
    for (kind, _, policy, knobs), outcome in zip(runs, outcomes, strict=True):
        rows.append(row(policy.name, kind, outcome, outcome.tally.counts, dense_outcome, reference, knobs))
        if isinstance(policy, policies.Dense):
            parallel = policies.Dense(bit_serial=False)
            tally = outcome.tally
            rows.append(row(parallel.name, "dense", outcome, parallel.counts(
                base.config, tally.pairs, tally.queries, tally.tokens), dense_outcome, reference, {}))
    for (policy, knobs), (outcome, own) in zip(tuned_peers, tuned_results, strict=True):
        rows.append(row(f"{policy.name}, fine-tuned", "peer", outcome, outcome.tally.counts, dense_outcome,
                        dataclasses.replace(reference, same_weights=own),
                        {**knobs, "finetune_steps": finetune_steps}))
    return {
        "schema": SCHEMA, "test_sentences": len(test_ids), "seed": seed, "budget_points": budget,
        "finetune_steps": finetune_steps,
        "energy_pj": energy.PJ,
        "float_dense_accuracy": confidence.accuracy(reference.same_weights, seed),
        "dense_control_accuracy": None if control is None else confidence.accuracy(reference.control, seed),
        "validation": tuning,
        "rows": rows,
    }
