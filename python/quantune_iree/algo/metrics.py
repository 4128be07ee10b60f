"""Error metrics: pure functions of a reference and a candidate. No model, no IO."""

from __future__ import annotations

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
