"""Shared by the evaluation tools: the dev images with their labels and the FP32 build's
outputs, scoring a candidate against them, and onnxruntime's static INT8 (the baseline)."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from quantune_iree.algo.metrics import ErrorAccumulator, top1_agreement
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import Preprocess, calibration_files, load_image
from quantune_iree.model.graph import ImportedModel


def load_labels(eval_dir: str) -> dict[str, int]:
    """File name → ImageNet class, for the dev images dev.csv labels (none without dev.csv)."""
    path = os.path.join(eval_dir, "dev.csv")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {
            r["file"]: int(r["imagenet_label"])
            for r in csv.DictReader(f)
            if r.get("imagenet_label")
        }


CONFIDENT = 0.5  # FP32 top-1 probability from which an image counts as confident


@dataclass(frozen=True)
class DevSet:
    inputs: list[np.ndarray]  # preprocessed dev images, batches of 1
    ref: np.ndarray  # the FP32 build's first output per image
    labelled: list[int]  # indices of the images with a label
    truth: np.ndarray  # their labels

    def top1(self, logits: np.ndarray) -> float:
        """Labelled top-1 accuracy of `logits` (nan without labels)."""
        if not self.labelled:
            return float("nan")
        return float(np.mean(logits[self.labelled].argmax(-1) == self.truth))

    def confident(self, threshold: float = CONFIDENT) -> np.ndarray:
        """The images where FP32's top-1 softmax probability is at least `threshold`: where
        its top-1 is no near-tie, so a changed top-1 is a real error, not noise."""
        z = self.ref - self.ref.max(axis=-1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        return p.max(axis=-1) >= threshold

    def score(self, got: np.ndarray) -> tuple[float, float, float, float]:
        """(top-1 agreement with FP32, labelled top-1, output SQNR dB, top-1 agreement on the
        confident images) of `got`."""
        acc = ErrorAccumulator()
        acc.add(self.ref, got)
        mask = self.confident()
        conf = top1_agreement(self.ref[mask], got[mask]) if mask.any() else float("nan")
        return top1_agreement(self.ref, got), self.top1(got), acc.sqnr_db, conf

    def run(self, runner: Callable[[list[np.ndarray]], list[np.ndarray]]) -> np.ndarray:
        return np.stack([runner([x])[0][0] for x in self.inputs])


def load_imageset(
    folder: str,
    model: ImportedModel,
    preset: Preprocess,
    labels: dict[str, int] | None = None,
    limit: int | None = None,
) -> DevSet:
    """The images of `folder` with the FP32 build's outputs (and `labels` by file name)."""
    labels = labels or {}
    files = calibration_files(folder)[:limit]
    inputs = [load_image(p, preset) for p in files]
    fp32 = Engine(model, get_target("host")).load(None)
    labelled = [i for i, p in enumerate(files) if os.path.basename(p) in labels]
    return DevSet(
        inputs=inputs,
        ref=np.stack([fp32([x])[0][0] for x in inputs]),
        labelled=labelled,
        truth=np.array([labels[os.path.basename(files[i])] for i in labelled]),
    )


def load_devset(
    eval_dir: str, model: ImportedModel, preset: Preprocess, limit: int | None = None
) -> DevSet:
    """`eval_dir`/images/dev with the labels of `eval_dir`/dev.csv."""
    dev = os.path.join(eval_dir, "images", "dev")
    return load_imageset(dev, model, preset, load_labels(eval_dir), limit)


def ort_quantize_static(
    path: str,
    input_name: str,
    samples: Iterable[np.ndarray],
    exclude: Sequence[str] = (),
    activation_type: object = None,
) -> str:
    """onnxruntime quantize_static (QDQ, per-channel s8 weights, its default minmax calibration)
    of the model at `path`, fed `samples`; returns the quantized model's path. Activations are
    u8 (onnxruntime's default, its u8 x s8 kernels) unless `activation_type` says otherwise."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(samples)

        def get_next(self):  # noqa: ANN202
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    out = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False).name
    quantize_static(
        path,
        out,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        nodes_to_exclude=list(exclude),
        activation_type=activation_type or QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out
