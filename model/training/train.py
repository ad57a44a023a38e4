"""Threshold training: fine-tune MiniLM + a linear head on the task, learn one threshold per
(layer, head) with the soft mask, fine-tune again with the hard mask, then quantize and export.

Phases, by global step (batch ``batch_size``, AdamW, gradient norm clipped at 1):

1. **fine-tune** ``⌈epochs · train sentences / batch_size⌉`` steps, dense attention, learning rate ``lr``
   after a linear warm-up over the first tenth;
2. **soft** ``soft_steps`` steps: ``θ`` starts at each head's ``init_percentile`` percentile of the
   scores ``q·k/√Dh`` over the calibration sentences, the loss is ``cross-entropy + λ·mean(m)`` with
   ``m = sigmoid((s − θ)/T)`` over the visible pairs of every layer and head, ``T`` falls geometrically
   from ``temperature_start`` to ``temperature_end``; ``θ`` learns at ``theta_lr``, the weights at ``lr``;
3. **hard** ``hard_steps`` steps: ``m = [s ≥ θ]``, ``θ`` fixed, the weights' learning rate falls
   linearly from ``lr`` to 0.

**Cost-aware training** (``plane_cost`` W > 0): phases 2 and 3 add ``W·mean(planes)/k_bits``, a
differentiable proxy of the bit planes the engine's bound needs per visible pair
(``pruned_attention.plane_proxy``), with the key steps of the export's quantization, recalibrated on the
current weights every ``RECALIBRATE_EVERY`` steps. **Distillation** (``distill`` W > 0): phases 2 and 3 add
``W·KL(teacher ‖ model)`` of the class distributions, averaged over the batch's sentences; the teacher is
the fine-tuned model (``finetuned.pt``, the end of phase 1), frozen, with dense float attention and no
dropout. **Key centering** (``center_keys``): each head's mean key leaves the key bias just before ``θ``
is initialized. **Quantization** (``clip_percentile``, ``clip_q_percentile``, ``key_block``; by default
keys clipped at their 99th percentile with per-channel scales): how the export turns ``q`` and ``k`` into
integers (``model/training/quantize.py``); without a plane cost it does not change the training.

The **dense control** (``prune=False``) runs phases 2 and 3 as dense fine-tuning with the same learning
rates (and the same distillation): the accuracy the same training reaches without pruning. Its export
holds thresholds one below the register's minimum, so the engine keeps every key.

Batches: epoch ``e`` visits the training sentences in the order ``default_rng([seed, e]).permutation``,
``batch_size`` at a time (the last partial batch is dropped), so a resumed run sees the batches an
uninterrupted one would. A checkpoint (weights, thresholds, optimizer, log) is written every
``checkpoint_every`` steps and at the end of each phase; ``finetuned.pt`` keeps the end of phase 1.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.files import all_or_nothing, write_atomic, write_json
from leopard.model.reference import levers
from leopard.model.training import bert, export, quantize
from leopard.model.training.data import Dataset, DataSpec, Tokenizer, load_dataset, pad
from leopard.model.training.evaluate import evaluate, float_accuracy
from leopard.model.training.pruned_attention import (
    PLANE_PROXIES,
    PlaneCost,
    PrunedCore,
    Thresholds,
    scaled_scores,
    visible_pairs,
)

CHECKPOINT = "checkpoint.pt"
FINETUNED = "finetuned.pt"
EXPORT = "export.npz"
WARMUP_FRACTION = 0.1
CALIBRATION_BATCH = 64
RECALIBRATE_EVERY = 50


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained weights and thresholds (with the data settings)."""

    lam: float = 0.2
    epochs: float = 0.5
    soft_steps: int = 200
    hard_steps: int = 100
    batch_size: int = 16
    lr: float = 5e-5
    theta_lr: float = 0.02
    temperature_start: float = 0.5
    temperature_end: float = 0.05
    init_percentile: float = 30.0
    seed: int = 0
    calibration_sentences: int = 256
    weights_dtype: str = "float16"
    checkpoint_every: int = 50
    prune: bool = True
    """False: the dense control, trained on the same schedule without thresholds (nothing pruned)."""
    threads: int = 1
    """torch threads; back-propagation sums in another order with another count, so it is recorded."""
    clip_percentile: float = levers.DEFAULT_CLIP_PERCENTILE
    """Outlier-aware quantization: ``k`` saturates at this percentile (100: its largest value)."""
    key_block: int = levers.DEFAULT_KEY_BLOCK
    """Finer key scaling: key channels per scale block (1: per channel; 0: one key scale per head)."""
    clip_q_percentile: float = 100.0
    """Outlier-aware quantization of ``q`` (100: its largest value)."""
    plane_cost: float = 0.0
    """Weight ``W`` of the planes proxy in the loss (0: off)."""
    plane_proxy: str = "log"
    """``log`` or ``sigmoid``: see ``pruned_attention.plane_proxy``."""
    distill: float = 0.0
    """Weight ``W`` of the distillation from the fine-tuned model in phases 2 and 3 (0: off)."""
    center_keys: bool = False
    """Key centering in the model: each head's mean key over the calibration sentences is taken out of
    the key bias when the thresholds are set (see ``center_keys``)."""

    def quant(self) -> quantize.QuantSettings:
        """The export's quantization settings."""
        return quantize.QuantSettings(clip_percentile=self.clip_percentile, key_block=self.key_block,
                                      clip_q_percentile=self.clip_q_percentile)

    def check(self) -> None:
        """One-line errors for settings that cannot train."""
        if not self.epochs > 0:
            raise LeopardError(f"--epochs must be positive, got {self.epochs}")
        if self.lam < 0:
            raise LeopardError(f"--lambda must be at least 0, got {self.lam}")
        for name in ("soft_steps", "hard_steps"):
            if getattr(self, name) < 0:
                raise LeopardError(f"{name} must be at least 0, got {getattr(self, name)}")
        for name in ("batch_size", "calibration_sentences", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise LeopardError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.temperature_end <= self.temperature_start:
            raise LeopardError("temperatures must satisfy 0 < end ≤ start")
        if not 0 <= self.init_percentile <= 100:
            raise LeopardError(f"init_percentile must be in [0, 100], got {self.init_percentile}")
        if self.weights_dtype not in export.WEIGHT_DTYPES:
            raise LeopardError(f"weights dtype must be one of {', '.join(export.WEIGHT_DTYPES)}")
        for name in ("plane_cost", "distill"):
            value = getattr(self, name)
            if value < 0:
                raise LeopardError(f"--{name.replace('_', '-')} must be at least 0, got {value}")
        if self.plane_proxy not in PLANE_PROXIES:
            raise LeopardError(
                f"--plane-proxy must be one of {', '.join(PLANE_PROXIES)}, got {self.plane_proxy!r}"
            )


FINETUNE_FIELDS = ("epochs", "batch_size", "lr", "seed")
"""The settings phase 1 depends on: a checkpoint from phase 1 resumes under any other ``λ``, ``θ``
learning rate, temperatures or phase-2/3 lengths."""
RESUME_FREE_FIELDS = ("checkpoint_every", "threads")
"""Settings a run may change when it resumes."""
EXPORT_FIELDS = ("clip_percentile", "key_block", "clip_q_percentile")
"""Settings that only change the export when there is no plane cost: a finished run re-exports under
other values without training again."""
BEFORE_LEVERS = {"clip_percentile": 100.0, "key_block": 0, "clip_q_percentile": 100.0, "plane_cost": 0.0,
                 "plane_proxy": "log", "center_keys": False, "distill": 0.0}
"""What a checkpoint or an export made before the levers existed was made with: every lever off."""


@dataclass(frozen=True)
class Schedule:
    """Step counts of the three phases."""

    finetune: int
    soft: int
    hard: int

    @property
    def total(self) -> int:
        return self.finetune + self.soft + self.hard

    def phase(self, step: int) -> str:
        if step < self.finetune:
            return "finetune"
        return "soft" if step < self.finetune + self.soft else "hard"

    @classmethod
    def of(cls, settings: TrainSettings, train_sentences: int) -> Schedule:
        if train_sentences < settings.batch_size:
            raise LeopardError(
                f"{train_sentences} training sentences do not fill one batch of {settings.batch_size}"
            )
        steps = math.ceil(settings.epochs * train_sentences / settings.batch_size)
        return cls(steps, settings.soft_steps, settings.hard_steps)


def temperature(settings: TrainSettings, soft_step: int) -> float:
    """``T`` at step ``soft_step`` of the soft phase: geometric from start to end."""
    if settings.soft_steps <= 1:
        return settings.temperature_end
    ratio = settings.temperature_end / settings.temperature_start
    return settings.temperature_start * ratio ** (soft_step / (settings.soft_steps - 1))


def weights_lr(settings: TrainSettings, schedule: Schedule, step: int) -> float:
    """The weights' learning rate: warm-up, constant through the soft phase, linear decay when hard."""
    warmup = max(1, round(WARMUP_FRACTION * schedule.finetune))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    if schedule.phase(step) == "hard":
        return settings.lr * (schedule.total - step) / schedule.hard
    return settings.lr


def batch_indices(settings: TrainSettings, sentences: int, step: int) -> np.ndarray:
    """The training sentences of ``step`` (see the module docstring)."""
    per_epoch = sentences // settings.batch_size
    epoch, slot = divmod(step, per_epoch)
    order = np.random.default_rng([settings.seed, epoch]).permutation(sentences)
    return order[slot * settings.batch_size : (slot + 1) * settings.batch_size]


def calibration_batches(
    settings: TrainSettings, ids: list[list[int]]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The calibration sentences (the first of a seeded permutation of the training set), batched."""
    order = np.random.default_rng([settings.seed, len(ids)]).permutation(len(ids))
    chosen = sorted(order[: settings.calibration_sentences].tolist())
    return [pad([ids[i] for i in chosen[s : s + CALIBRATION_BATCH]])
            for s in range(0, len(chosen), CALIBRATION_BATCH)]


def mean_keys(model: bert.Classifier, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer, ``[H·Dh]``: the mean key of each head over the visible tokens of ``batches``."""
    config = model.bert.config
    sums = [torch.zeros(config.hidden_size, dtype=torch.float64) for _ in range(config.num_hidden_layers)]
    count = 0

    def core(
        layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        sums[layer] += k.transpose(1, 2)[valid].double().sum(dim=0).reshape(-1)
        return bert.dense_core(layer, q, k, v, valid)

    with torch.no_grad():
        for ids, valid in batches:
            model(ids, valid, core)
            count += int(valid.sum())
    return [total / count for total in sums]


def center_keys(model: bert.Classifier, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Subtract each head's mean key ``μ`` (over ``batches``) from the key bias, in place.

    Every score of a query moves by the same ``−q·μ/√Dh``, so the dense model's attention, and its
    output, are unchanged; the keys the engine sees are centered, which narrows their range (a finer
    key step) and moves the scores the thresholds are then learned on. The hardware is unchanged.
    """
    means = mean_keys(model, batches)
    with torch.no_grad():
        for layer, mean in zip(model.bert.encoder.layer, means, strict=True):
            layer.attention.self.key.bias -= mean.to(layer.attention.self.key.bias.dtype)


def initial_thresholds(
    model: bert.Classifier, batches: list[tuple[torch.Tensor, torch.Tensor]], percentile: float
) -> torch.Tensor:
    """``[layers, heads]``: each head's ``percentile`` percentile of its visible scores ``q·k/√Dh``."""
    config = model.bert.config
    seen: list[list[list[np.ndarray]]] = [[[] for _ in range(config.num_attention_heads)]
                                          for _ in range(config.num_hidden_layers)]

    def core(
        layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        scores, visible = scaled_scores(q, k), visible_pairs(valid)[:, 0]
        for head in range(q.shape[1]):
            seen[layer][head].append(scores[:, head][visible].double().numpy())
        return bert.dense_core(layer, q, k, v, valid)

    with torch.no_grad():
        for ids, valid in batches:
            model(ids, valid, core)
    values = [[np.percentile(np.concatenate(head), percentile) for head in layer] for layer in seen]
    return torch.tensor(values, dtype=torch.float32)


def check_engine(cfg: EngineConfig, config: bert.BertConfig, spec: DataSpec) -> None:
    """Refuse, before training, an engine config the export could not be made for."""
    if cfg.head_dim != config.head_dim:
        raise LeopardError(f"the engine's head_dim {cfg.head_dim} differs from the model's {config.head_dim}")
    slots = config.num_hidden_layers * config.num_attention_heads
    if cfg.threshold_regs < slots:
        raise LeopardError(
            f"the engine's threshold_regs {cfg.threshold_regs} cannot hold {slots} (layer, head) slots"
        )
    if cfg.max_seq_len < spec.max_tokens:
        raise LeopardError(
            f"the engine's max_seq_len {cfg.max_seq_len} is below the {spec.max_tokens} tokens of a sentence"
        )


@dataclass
class State:
    """What a checkpoint holds besides the weights and optimizer."""

    step: int = 0
    theta_ready: bool = False
    finetune_accuracy: float | None = None
    seconds: dict[str, float] | None = None
    log: list[dict[str, Any]] | None = None
    key_unit: list[Any] | None = None
    """``[layers, heads, Dh]`` key steps in score units, ``s_k·c_d/√Dh`` (for the plane cost)."""


class Trainer:
    """One training run in ``run_dir``: resumes from its checkpoint, ends with an export and a report."""

    def __init__(self, run_dir: Path, settings: TrainSettings, spec: DataSpec, cfg: EngineConfig,
                 *, model_dir: Path | None = None, progress: bool = True) -> None:
        settings.check()
        torch.set_num_threads(settings.threads)
        self.run_dir, self.settings, self.spec, self.cfg = run_dir, settings, spec, cfg
        self.model_dir = bert.pretrained_path() if model_dir is None else model_dir
        self.progress = progress
        self.dataset: Dataset = load_dataset(spec)
        self.tokenizer = Tokenizer.from_folder(self.model_dir, spec.max_tokens)
        self.train_ids = self.tokenizer.encode(self.dataset.train.texts)
        self.schedule = Schedule.of(settings, len(self.train_ids))
        pretrained = bert.load_pretrained(self.model_dir)
        check_engine(cfg, pretrained.config, spec)
        settings.quant().check(pretrained.config.head_dim)
        self.model = bert.Classifier(pretrained.config, len(self.dataset.label_names))
        self.model.bert = pretrained
        torch.manual_seed(settings.seed)
        self.model.head.reset_parameters()
        config = self.model.bert.config
        self.thresholds = Thresholds(config.num_hidden_layers, config.num_attention_heads)
        self.optimizer = torch.optim.AdamW([
            {"params": list(self.model.parameters()), "weight_decay": 0.01},
            {"params": list(self.thresholds.parameters()), "weight_decay": 0.0},
        ])
        self.state = State(seconds={"finetune": 0.0, "soft": 0.0, "hard": 0.0}, log=[])
        self.teacher: bert.Classifier | None = None
        self.calibration = calibration_batches(settings, self.train_ids)

    def checkpoint_fields(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings), "data": self.spec.to_dict(), "schedule": asdict(self.schedule),
            "model_dir": str(self.model_dir),
        }

    def save(self, name: str = CHECKPOINT) -> None:
        buffer = io.BytesIO()
        torch.save({
            **self.checkpoint_fields(), "state": asdict(self.state), "model": self.model.state_dict(),
            "thresholds": self.thresholds.state_dict(), "optimizer": self.optimizer.state_dict(),
        }, buffer)
        write_atomic(self.run_dir / name, buffer.getvalue(), now=True)

    def resume(self) -> None:
        """Continue from ``run_dir``'s checkpoint when there is one made with compatible settings."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        try:
            saved = torch.load(path, weights_only=True)
            state = State(**saved["state"])
        except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as error:
            raise LeopardError(f"checkpoint {path} is unreadable ({error}); delete it to restart") from None
        self._check_compatible(path, saved, state.step)
        self.model.load_state_dict(saved["model"])
        self.thresholds.load_state_dict(saved["thresholds"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.state = state

    def _check_compatible(self, path: Path, saved: dict[str, Any], step: int) -> None:
        own = self.checkpoint_fields()
        free = RESUME_FREE_FIELDS
        if self.settings.plane_cost == 0 and saved["settings"].get("plane_cost", 0) == 0:
            free += EXPORT_FIELDS
        names = [f.name for f in fields(TrainSettings) if f.name not in free]
        if step <= self.schedule.finetune:
            names = list(FINETUNE_FIELDS)
        for name in names:
            was = {**BEFORE_LEVERS, **saved["settings"]}.get(name)
            if was != own["settings"][name]:
                raise LeopardError(
                    f"checkpoint {path} was made with {name} {was}, not "
                    f"{own['settings'][name]}; use another --out folder or delete it"
                )
        if saved["data"] != own["data"] or saved["schedule"]["finetune"] != own["schedule"]["finetune"]:
            raise LeopardError(f"checkpoint {path} was made on other data settings; use another --out folder")
        if saved["model_dir"] != own["model_dir"]:
            raise LeopardError(
                f"checkpoint {path} was made from the model {saved['model_dir']}; use another --out folder"
            )

    def run(self) -> dict[str, Any]:
        """Train to the end of the schedule (from the checkpoint), export, evaluate; the summary.

        A finished run whose outputs are all there returns its summary without training again.
        """
        self.resume()
        done = self.run_dir / "evaluation.json"
        if self.state.step == self.schedule.total and done.exists() and (self.run_dir / EXPORT).exists():
            summary = json.loads(done.read_text())
            if summary["settings"] == asdict(self.settings):
                return summary
        self._train_until(self.schedule.total)
        return self.finish()

    def run_finetune(self) -> None:
        """Train (or resume) to the end of the fine-tuning phase only, which saves ``finetuned.pt``: the
        phase does not depend on ``λ``, so the runs of a sweep share it."""
        self.resume()
        self._train_until(self.schedule.finetune)

    def _train_until(self, last: int) -> None:
        bar = tqdm(total=last, initial=min(self.state.step, last), desc="train", unit="step",
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        with bar:
            while self.state.step < last:
                record = self.step()
                bar.update(1)
                bar.set_postfix(phase=record["phase"], loss=f"{record['loss']:.3f}",
                                pruned=f"{record['pruned']:.3f}")

    def step(self) -> dict[str, Any]:
        """One optimizer step; returns its log record."""
        settings, schedule, step = self.settings, self.schedule, self.state.step
        phase = schedule.phase(step)
        start = time.perf_counter()
        if not settings.prune and phase != "finetune":
            phase = "dense"
        if phase in ("soft", "hard"):
            self._ensure_thresholds()
        chosen = batch_indices(settings, len(self.train_ids), step)
        ids, valid = pad([self.train_ids[i] for i in chosen])
        labels = torch.from_numpy(self.dataset.train.labels[chosen])
        record: dict[str, Any] = {"step": step, "phase": phase}
        if phase in ("finetune", "dense"):
            logits = self.model(ids, valid)
            loss = task = torch.nn.functional.cross_entropy(logits, labels)
            record["pruned"] = 0.0
        else:
            T = temperature(settings, min(step - schedule.finetune, settings.soft_steps - 1))
            core = PrunedCore(self.thresholds, soft=phase == "soft", temperature=T,
                              planes=self._plane_cost(step - schedule.finetune))
            logits = self.model(ids, valid, core)
            task = torch.nn.functional.cross_entropy(logits, labels)
            loss = task + settings.lam * core.mask_mean() if phase == "soft" else task
            if core.planes is not None:
                planes = core.plane_mean()
                loss = loss + settings.plane_cost * planes / self.cfg.k_bits
                record["planes_proxy"] = round(planes.item(), 6)
            record.update(
                temperature=round(T, 6) if phase == "soft" else None,
                mask_mean=round(core.mask_mean().item(), 6), pruned=round(core.stats.pruned_fraction(), 6),
            )
        if settings.distill and phase != "finetune":
            divergence = self._distillation(ids, valid, logits)
            loss = loss + settings.distill * divergence
            record["distillation"] = round(divergence.item(), 6)
        weights_rate = weights_lr(settings, schedule, step)
        self.optimizer.param_groups[0]["lr"] = weights_rate
        self.optimizer.param_groups[1]["lr"] = settings.theta_lr if phase == "soft" else 0.0
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        record.update(loss=round(loss.item(), 6), task_loss=round(task.item(), 6), lr=weights_rate)
        self.state.log.append(record)
        self.state.seconds[schedule.phase(step)] += time.perf_counter() - start
        self.state.step += 1
        self._after_step(step + 1)
        return record

    def _distillation(self, ids: torch.Tensor, valid: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``KL(teacher ‖ model)`` of the class distributions, averaged over the batch's sentences."""
        if self.teacher is None:
            self.teacher = self._load_teacher()
        with torch.no_grad():
            taught = torch.log_softmax(self.teacher(ids, valid), dim=-1)
        return torch.nn.functional.kl_div(torch.log_softmax(logits, dim=-1), taught, log_target=True,
                                          reduction="batchmean")

    def _load_teacher(self) -> bert.Classifier:
        """The fine-tuned model, frozen, in eval mode: from ``finetuned.pt``, or the model itself when the
        run stands at the end of fine-tuning (a run resumed from another run's ``finetuned.pt``, as a
        sweep's are), saved as this run's ``finetuned.pt`` for later resumes."""
        path = self.run_dir / FINETUNED
        teacher = bert.Classifier(self.model.bert.config, len(self.dataset.label_names))
        if path.exists():
            teacher.load_state_dict(torch.load(path, weights_only=True)["model"])
        elif self.state.step == self.schedule.finetune:
            teacher.load_state_dict(self.model.state_dict())
            self.save(FINETUNED)
        else:
            raise LeopardError(f"--distill needs {path}, the end of fine-tuning, to resume; "
                               f"use a new --out folder")
        return teacher.eval().requires_grad_(False)

    def _ensure_thresholds(self) -> None:
        """Set ``θ`` to each head's ``init_percentile`` percentile unless that was done (centering the
        keys first with ``center_keys``)."""
        if not self.state.theta_ready:
            if self.settings.center_keys:
                center_keys(self.model, self.calibration)
            self.thresholds.theta.data = initial_thresholds(
                self.model, self.calibration, self.settings.init_percentile
            )
            self.state.theta_ready = True

    def _plane_cost(self, pruning_step: int) -> PlaneCost | None:
        """The planes proxy with the key steps of the export's quantization, calibrated on the current
        weights every ``RECALIBRATE_EVERY`` steps of phases 2 and 3 (and kept in the checkpoint), so they
        follow the weights; ``None`` without a plane cost."""
        settings = self.settings
        if settings.plane_cost == 0:
            return None
        if self.state.key_unit is None or pruning_step % RECALIBRATE_EVERY == 0:
            quant = quantize.calibrate(self.model, self.calibration, self.cfg, settings.quant())
            unit = quant.scale_k[:, :, None] * quant.key_channel / math.sqrt(quant.head_dim)
            self.state.key_unit = unit.tolist()
        return PlaneCost(torch.tensor(self.state.key_unit, dtype=torch.float32), self.cfg.k_bits,
                         settings.plane_proxy)

    def _after_step(self, done: int) -> None:
        schedule = self.schedule
        boundaries = {schedule.finetune, schedule.finetune + schedule.soft, schedule.total}
        if done == self.schedule.finetune:
            start = time.perf_counter()
            self.state.finetune_accuracy = float_accuracy(self.model, self.dataset.test, self.tokenizer)
            self.state.seconds["finetune"] += time.perf_counter() - start
            self.save(FINETUNED)
        if done % self.settings.checkpoint_every == 0 or done in boundaries:
            self.save()

    def make_export(self) -> export.Export:
        """Round the weights to the export dtype, calibrate the scales on them, convert ``θ``."""
        weights = export.round_weights(self.model, self.settings.weights_dtype)
        rounded = bert.Classifier(self.model.bert.config, len(self.dataset.label_names))
        rounded.load_state_dict({name: torch.from_numpy(w.astype(np.float32)) for name, w in weights.items()})
        quant = quantize.calibrate(rounded.eval(), self.calibration, self.cfg, self.settings.quant())
        if self.settings.prune:
            self._ensure_thresholds()
            theta = self.thresholds.theta.detach().double().numpy()
        else:
            theta = keep_all_thresholds(self.cfg, quant)
        return export.Export(
            config=self.cfg, bert=self.model.bert.config, tokenizer=self.tokenizer.json_text,
            labels=self.dataset.label_names, data=self.spec,
            data_sha256=self.dataset.sha256, training={**asdict(self.settings), **asdict(self.schedule)},
            weights=weights, threshold=theta,
            threshold_int=quantize.threshold_int(theta, quant.score_scale(), self.cfg),
            scale_q=quant.scale_q, scale_k=quant.scale_k, scale_v=quant.scale_v,
            key_channel_scale=quant.key_channel,
        )

    def finish(self) -> dict[str, Any]:
        """Write ``export.npz``, ``evaluation.json``, ``train_log.json`` and ``timing.json``, all four or
        none."""
        with all_or_nothing():
            return self._write_results()

    def _write_results(self) -> dict[str, Any]:
        start = time.perf_counter()
        made = self.make_export()
        export.save(made, self.run_dir / EXPORT)
        report = evaluate(made, self.dataset.test)
        summary = {
            "settings": asdict(self.settings), "schedule": asdict(self.schedule),
            "data": {**self.spec.to_dict(), **self.dataset.summary()},
            "finetune_accuracy": self.state.finetune_accuracy,
            "accuracy_loss_vs_finetuned": (
                None if self.state.finetune_accuracy is None
                else round(report["accuracy"]["quantized_pruned"] - self.state.finetune_accuracy, 4)
            ),
            "evaluation": report,
        }
        write_json(self.run_dir / "evaluation.json", summary)
        write_json(self.run_dir / "train_log.json", self.state.log)
        seconds = {**self.state.seconds, "export_and_evaluate": time.perf_counter() - start}
        write_json(self.run_dir / "timing.json", {key: round(value, 1) for key, value in seconds.items()}
                   | {"threads": self.settings.threads})
        return summary


def keep_all_thresholds(cfg: EngineConfig, quant: quantize.Quantization) -> np.ndarray:
    """The dense control's ``θ``: one below the threshold register's minimum, so every key is kept."""
    return (cfg.threshold_min - 1) * quant.score_scale()


def settings_of(made: export.Export) -> TrainSettings:
    """The training settings an export records (levers it predates: off)."""
    names = {f.name for f in fields(TrainSettings)}
    return TrainSettings(**{key: value for key, value in {**BEFORE_LEVERS, **made.training}.items()
                            if key in names})


def requantize(made: export.Export, dataset: Dataset, quant: quantize.QuantSettings) -> export.Export:
    """``made`` quantized again under ``quant``: the ``q``, ``k`` (and ``v``) scales calibrated afresh on
    the calibration sentences it was trained with (``dataset``: its data), ``θ_int`` following; weights and
    float thresholds unchanged. With ``made``'s own settings this reproduces its scales exactly."""
    settings = settings_of(made)
    quant.check(made.bert.head_dim)
    ids = made.text_tokenizer().encode(dataset.train.texts)
    calibration = calibration_batches(settings, ids)
    scales = quantize.calibrate(made.classifier(), calibration, made.config, quant)
    theta = made.threshold if settings.prune else keep_all_thresholds(made.config, scales)
    training = {
        **made.training, **asdict(quant),
        "requantized_from": {**asdict(settings.quant()), **made.training.get("requantized_from", {})},
    }
    return replace(
        made, training=training, threshold=theta,
        threshold_int=quantize.threshold_int(theta, scales.score_scale(), made.config),
        scale_q=scales.scale_q, scale_k=scales.scale_k, scale_v=scales.scale_v,
        key_channel_scale=scales.key_channel,
    )


def finetune(run_dir: str | Path, settings: TrainSettings, spec: DataSpec, cfg: EngineConfig,
             *, model_dir: Path | None = None, progress: bool = True) -> None:
    """The fine-tuning phase of ``train`` alone, ending with ``run_dir/finetuned.pt``."""
    Trainer(Path(run_dir), settings, spec, cfg, model_dir=model_dir, progress=progress).run_finetune()


def train(run_dir: str | Path, settings: TrainSettings, spec: DataSpec, cfg: EngineConfig,
          *, model_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) in ``run_dir`` from the BERT checkpoint folder ``model_dir`` (default: the
    installed all-MiniLM-L6-v2) and return the evaluation summary."""
    return Trainer(Path(run_dir), settings, spec, cfg, model_dir=model_dir, progress=progress).run()

