"""95 % confidence intervals of accuracies and of paired accuracy differences: the percentile bootstrap
over test examples (``RESAMPLES`` resamples drawn with ``default_rng(seed)``), the same resamples for
every interval of one seed, so paired differences resample the same examples on both sides."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def resamples(examples: int, seed: int) -> np.ndarray:
    """``[RESAMPLES, examples]`` indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, examples, size=(RESAMPLES, examples))


def interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of ``100 × mean(values)`` (percent or percentage points),
    ``values`` one number per example (1/0 for correct/wrong, or a difference of two such)."""
    draws = 100.0 * np.asarray(values, np.float64)[resamples(len(values), seed)].mean(axis=1)
    return percentiles(draws)


def percentiles(draws: np.ndarray) -> tuple[float, float]:
    """The central ``LEVEL`` range of bootstrap ``draws``, rounded to 4 decimals."""
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return round(float(low), 4), round(float(high), 4)


def accuracy(correct: np.ndarray, seed: int) -> dict[str, float | list[float]]:
    """Accuracy in percent with its 95 % interval."""
    return {"value": round(100.0 * float(np.mean(correct)), 4), "ci95": list(interval(correct, seed))}


def paired_difference(
    correct: np.ndarray, reference: np.ndarray, seed: int
) -> dict[str, float | list[float]]:
    """``accuracy(correct) − accuracy(reference)`` in percentage points on the same examples, with the
    95 % interval of the paired bootstrap."""
    difference = np.asarray(correct, np.float64) - np.asarray(reference, np.float64)
    return {"value": round(100.0 * float(difference.mean()), 4), "ci95": list(interval(difference, seed))}


def ratio(
    numerator: np.ndarray, denominator: np.ndarray, seed: int, transform: Callable[[np.ndarray], np.ndarray]
) -> dict[str, float | list[float]]:
    """``transform(Σ numerator / Σ denominator)`` over examples (e.g. tokens correct over tokens, one
    pair per sentence) with its 95 % percentile-bootstrap interval, resampling examples."""
    top, bottom = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    picks = resamples(len(top), seed)
    draws = transform(top[picks].sum(axis=1) / bottom[picks].sum(axis=1))
    value = float(transform(np.array(top.sum() / bottom.sum())))
    return {"value": round(value, 4), "ci95": list(percentiles(draws))}


def ratio_difference(
    numerator: np.ndarray, reference: np.ndarray, denominator: np.ndarray, seed: int,
    compare: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> dict[str, float | list[float]]:
    """``compare(Σ numerator / Σ denominator, Σ reference / Σ denominator)`` with the 95 % interval of the
    paired bootstrap (the same resampled examples on both sides)."""
    top, base = np.asarray(numerator, np.float64), np.asarray(reference, np.float64)
    bottom = np.asarray(denominator, np.float64)
    picks = resamples(len(top), seed)
    count = bottom[picks].sum(axis=1)
    draws = compare(top[picks].sum(axis=1) / count, base[picks].sum(axis=1) / count)
    value = float(compare(np.array(top.sum() / bottom.sum()), np.array(base.sum() / bottom.sum())))
    return {"value": round(value, 4), "ci95": list(percentiles(draws))}
