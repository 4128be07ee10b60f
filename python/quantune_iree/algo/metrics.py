"""Error metrics: pure functions of a reference and a candidate. No model, no IO."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """10 log10(Σx² / Σ(x − x̂)²); +inf when the noise is zero."""
    if noise_energy <= 0.0:
        return float("inf")
    if signal_energy <= 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal_energy / noise_energy))


def sqnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = np.asarray(reference, np.float64)
    diff = ref - np.asarray(candidate, np.float64)
    return sqnr_db(
        float(np.dot(ref.ravel(), ref.ravel())), float(np.dot(diff.ravel(), diff.ravel()))
    )


def mse(reference: np.ndarray, candidate: np.ndarray) -> float:
    diff = np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)
    return float(np.mean(diff * diff))


@dataclass
class ErrorAccumulator:
    """Σx², Σ(x − x̂)² and the count, accumulated over samples."""

    signal: float = 0.0
    noise: float = 0.0
    count: int = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        ref = np.asarray(reference, np.float64).ravel()
        diff = ref - np.asarray(candidate, np.float64).ravel()
        self.signal += float(np.dot(ref, ref))
        self.noise += float(np.dot(diff, diff))
        self.count += ref.size

    @property
    def sqnr_db(self) -> float:
        return sqnr_db(self.signal, self.noise)

    @property
    def mse(self) -> float:
        return self.noise / self.count if self.count else 0.0


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose argmax over the last axis is the same."""
    ref = np.asarray(reference).reshape(-1, np.asarray(reference).shape[-1])
    cand = np.asarray(candidate).reshape(ref.shape)
    return float(np.mean(ref.argmax(axis=-1) == cand.argmax(axis=-1)))


def cosine_similarities(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, ...]:
    """Per sample (the first axis), the cosine similarity of the flattened outputs; 1.0 where
    both are zero, 0.0 where only one is."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    cand = np.asarray(candidate, np.float64).reshape(ref.shape)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    dots = np.einsum("ij,ij->i", ref, cand)
    both_zero = ~ref.any(axis=1) & ~cand.any(axis=1)
    sims = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), both_zero.astype(float))
    return tuple(float(v) for v in sims)


# A speed ratio whose interquartile range is wider than this fraction of its median is
# reported as unreliable (the machine was busy: other processes took the cores unevenly).
UNRELIABLE_SPREAD = 0.25


@dataclass(frozen=True)
class RatioSpread:
    """Per-run ratios of two interleaved timings (a_i / b_i): their median and quartiles."""

    median: float
    low: float  # 25th percentile
    high: float  # 75th percentile
    runs: int

    @property
    def reliable(self) -> bool:
        return self.runs >= 5 and (self.high - self.low) <= UNRELIABLE_SPREAD * self.median

    def describe(self) -> str:
        text = (
            f"{self.median:.2f}x (middle half of {self.runs} runs {self.low:.2f}-{self.high:.2f}x)"
        )
        if not self.reliable:
            text += "; UNRELIABLE: the runs disagree, the machine is busy, measure again"
        return text


def ratio_spread(a: Sequence[float], b: Sequence[float]) -> RatioSpread:
    """The spread of a_i / b_i over interleaved runs i (e.g. FP32 time over INT8 time)."""
    ratios = np.asarray(a, np.float64) / np.asarray(b, np.float64)
    low, median, high = np.percentile(ratios, [25, 50, 75])
    return RatioSpread(float(median), float(low), float(high), len(ratios))
