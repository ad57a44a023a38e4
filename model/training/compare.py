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
from typing import Any

import numpy as np

from leopard.hw.errors import LeopardError
from leopard.model.reference import confidence, energy, levers, policies
from leopard.model.training import capture, data, evaluate, export, peer_finetune
from leopard.model.training.bert import dense_core
from leopard.model.training.policy_core import PolicyCore, Tally
from leopard.model.training.quantize import HardwareCore, QuantSettings
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
        self.core = HardwareCore(made.config, made.quantization(), made.threshold, made.threshold_int,
                                 prune=False)

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


def tune(base: Engine, levered: Engine, lever_policy: policies.Leopard, ids: list[list[int]],
         labels: np.ndarray, budget: float, progress: Progress) -> dict[str, Any]:
    """Sanger's threshold and bits and SpAtten's token keep, head keep and progressive-quantization
    threshold: the least whole-head energy on the validation sentences at an accuracy no lower than
    dense's minus the allowance, ``budget`` points or what leopard's default row loses there, whichever
    is more (the peers get at least leopard's own accuracy budget)."""
    dense_run, leopard_run = run(base, policies.Dense(), ids, labels), run(levered, lever_policy, ids, labels)
    dense, leopard = dense_run.accuracy(), leopard_run.accuracy()
    allowed = max(budget, dense - leopard)
    progress(f"compare: validation, {len(ids)} training sentences: dense {dense:.2f} %, leopard with "
             f"levers {leopard:.2f} %; the peers may lose {allowed:.2f} points")

    def trial(knobs: dict[str, float], policy: policies.Policy) -> dict[str, Any]:
        outcome = run(base, policy, ids, labels)
        accuracy = outcome.accuracy()
        cost = head_energy(outcome)
        shown = ", ".join(f"{knob} {value:g}" for knob, value in knobs.items())
        progress(f"compare: validation {policy.name} ({shown}): {accuracy:.2f} %, "
                 f"{cost / 1000:.2f} nJ per head")
        return {"accuracy": round(accuracy, 4), "head_pj": round(cost, 3),
                "feasible": accuracy >= dense - allowed - 1e-9}

    sanger, sanger_trials = search({knob: values[0] for knob, values in SANGER_KNOBS.items()}, SANGER_KNOBS,
                                   policies.Sanger, trial)
    spatten, spatten_trials = search(
        {knob: values[0] for knob, values in SPATTEN_KNOBS.items()}, SPATTEN_KNOBS,
        lambda **knobs: policies.SpAtten(layers=base.layers, **knobs), trial,
    )
    return {
        "sentences": len(ids), "allowed_loss_points": round(allowed, 4), "dense_accuracy": round(dense, 4),
        "leopard_accuracy": round(leopard, 4), "dense_head_pj": round(head_energy(dense_run), 3),
        "leopard_head_pj": round(head_energy(leopard_run), 3), "top_k": top_k(leopard_run.tally).tolist(),
        "sanger": {"chosen": sanger, "trials": sanger_trials},
        "spatten": {"chosen": spatten, "trials": spatten_trials},
    }


def validation_split(examples: data.Examples, count: int, seed: int) -> data.Examples:
    """``count`` training sentences, the first of ``default_rng(seed)``'s permutation."""
    if not 1 <= count <= len(examples):
        raise LeopardError(f"--validation-sentences must be in [1, {len(examples)}] (training sentences), "
                           f"got {count}")
    return take(examples, np.random.default_rng(seed).permutation(len(examples))[:count])


def take(examples: data.Examples, chosen: np.ndarray) -> data.Examples:
    """The examples ``chosen``, in that order."""
    return data.Examples(tuple(examples.texts[i] for i in chosen), examples.labels[chosen],
                         tuple(examples.groups[i] for i in chosen))


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
) -> dict[str, Any]:
    """Every policy on ``test_count`` test sentences (default all; else the first of
    ``default_rng(seed)``'s permutation, as ``leopard trace`` picks them): the report. With
    ``finetune_steps``, each peer also runs with its weights fine-tuned that many steps under its own
    mask (``peer_finetune``), its accuracy change paired against those weights in float."""
    dataset = data.load_dataset(made.data)
    if dataset.sha256 != made.data_sha256:
        raise LeopardError(f"data {made.data.data} differs from the data the export was trained on")
    test = dataset.test
    if test_count is not None:
        test = take(test, capture.pick(test, test_count, seed))
    validation = validation_split(dataset.train, validation_count, seed)
    tokenizer = made.text_tokenizer()
    test_ids, validation_ids = tokenizer.encode(test.texts), tokenizer.encode(validation.texts)

    progress("compare: quantizing as the paper does and with the default levers")
    plain = requantize(made, dataset, PAPER_QUANTIZATION)
    base = Engine(dataclasses.replace(plain, config=plain.config.replace(skip_zero_planes=False)))
    levered = Engine(requantize(made, dataset, QuantSettings(
        clip_percentile=levers.DEFAULT_CLIP_PERCENTILE, key_block=levers.DEFAULT_KEY_BLOCK)))
    lever_policy = policies.Leopard(levered.made.config.replace(skip_zero_planes=False),
                                    "leopard, default levers")
    tuning = tune(base, levered, lever_policy, validation_ids, validation.labels, budget, progress)

    def float_correct(model: export.Export) -> np.ndarray:
        predictions, _ = evaluate.predict(model.classifier(), test_ids, lambda: dense_core)
        return predictions == test.labels

    reference = Accuracies(float_correct(made), None if control is None else float_correct(control), seed)
    rows: list[dict[str, Any]] = []

    def test_run(kind: str, engine: Engine, policy: policies.Policy, knobs: dict[str, Any],
                 accuracies: Accuracies = reference) -> Outcome:
        progress(f"compare: test, {len(test_ids)} sentences: {policy.name}")
        outcome = run(engine, policy, test_ids, test.labels)
        rows.append(row(policy.name, kind, outcome, outcome.tally.counts, dense, accuracies, knobs))
        return outcome

    progress(f"compare: test, {len(test_ids)} sentences: dense")
    dense = run(base, policies.Dense(), test_ids, test.labels)
    parallel = policies.Dense(bit_serial=False)
    rows.append(row("dense", "bit-serial", dense, dense.tally.counts, dense, reference, {}))
    rows.append(row(parallel.name, "dense", dense, parallel.counts(
        base.made.config, dense.tally.pairs, dense.tally.queries, dense.tally.tokens), dense, reference, {}))
    test_run("bit-serial", base, policies.Leopard(base.made.config, "leopard, paper bound"), {})
    test_run("bit-serial", levered, lever_policy, {
        "clip_percentile": levers.DEFAULT_CLIP_PERCENTILE, "key_block": levers.DEFAULT_KEY_BLOCK,
        "skip_zero_planes": False})
    test_run("bit-serial", levered, policies.Leopard(levered.made.config.replace(skip_zero_planes=True),
                                                     "leopard, levers + zero-plane skipping"), {
        "clip_percentile": levers.DEFAULT_CLIP_PERCENTILE, "key_block": levers.DEFAULT_KEY_BLOCK,
        "skip_zero_planes": True})
    k = np.array(tuning["top_k"], np.int64)
    spatten, sanger = tuning["spatten"]["chosen"], tuning["sanger"]["chosen"]
    peers: list[tuple[policies.Policy, dict[str, Any]]] = [
        (policies.TopK(k), {"k": k.tolist()}),
        (policies.SpAtten(layers=base.layers, **spatten), spatten),
        (policies.Sanger(**sanger), sanger),
    ]
    for policy, knobs in peers:
        test_run("peer", base, policy, knobs)
    for policy, knobs in peers if finetune_steps else []:
        tuned = peer_finetune.finetune(base.made, dataset, base.core, policy, finetune_steps, progress)
        own_weights = dataclasses.replace(reference, same_weights=float_correct(tuned))
        test_run("peer", Engine(tuned), dataclasses.replace(policy, name=f"{policy.name}, fine-tuned"),
                 {**knobs, "finetune_steps": finetune_steps}, own_weights)
    return {
        "schema": SCHEMA, "test_sentences": len(test_ids), "seed": seed, "budget_points": budget,
        "finetune_steps": finetune_steps,
        "energy_pj": energy.PJ,
        "float_dense_accuracy": confidence.accuracy(reference.same_weights, seed),
        "dense_control_accuracy": None if control is None else confidence.accuracy(reference.control, seed),
        "validation": tuning,
        "rows": rows,
    }
