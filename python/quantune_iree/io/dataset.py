"""Calibration data: a folder of images (with a preprocessing spec) or of .npy/.npz arrays, or a
.txt of sentences with a tokenizer (io.text).

Samples are produced one at a time, checked against the model's inputs (shape, dtype, finite
values) as they are read, so memory stays at one sample whatever the folder size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import QuantuneError
from ..model.graph import TensorSpec
from .text import TextSource, is_text, sentences, text_samples

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
ARRAY_EXTENSIONS = (".npy", ".npz")
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class Preprocess:
    """Image → tensor: RGB, resize the shorter side, centre crop, then
    value = (pixel * pixel_scale - mean[c]) / std[c], laid out as `layout`."""

    resize: int = 256
    crop: int = 224
    pixel_scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise QuantuneError(f"layout must be {' or '.join(LAYOUTS)}, not '{self.layout}'")
        if self.crop <= 0 or self.resize < self.crop:
            raise QuantuneError(
                f"need 0 < crop <= resize, got crop={self.crop} resize={self.resize}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise QuantuneError("mean and std need 3 values each, std non-zero")


# Named presets: torchvision ImageNet models, and TF-style [-1, 1] models (EfficientNet-Lite).
PRESETS: dict[str, Preprocess] = {
    "imagenet": Preprocess(),
    "tf": Preprocess(pixel_scale=1.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
}


def load_image(path: str, spec: Preprocess) -> np.ndarray:
    """One image as a float32 batch of 1 in `spec.layout`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = spec.resize / min(w, h)
            img = img.resize(
                (max(spec.crop, round(w * scale)), max(spec.crop, round(h * scale))),
                Image.Resampling.BILINEAR,
            )
            w, h = img.size
            left, top = (w - spec.crop) // 2, (h - spec.crop) // 2
            img = img.crop((left, top, left + spec.crop, top + spec.crop))
            pixels = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise QuantuneError(f"{path}: cannot decode image ({exc})") from None
    x = (pixels * np.float32(spec.pixel_scale) - np.asarray(spec.mean, np.float32)) / np.asarray(
        spec.std, np.float32
    )
    x = x[None]  # NHWC
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _check(path: str, spec: TensorSpec, x: np.ndarray) -> np.ndarray:
    if tuple(x.shape) != spec.shape:
        raise QuantuneError(
            f"{path}: shape {tuple(x.shape)} does not match model input '{spec.name}' {spec.shape}"
        )
    if x.dtype.name != spec.dtype:
        raise QuantuneError(
            f"{path}: dtype {x.dtype.name} does not match model input '{spec.name}' ({spec.dtype})"
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise QuantuneError(f"{path}: contains NaN or Inf values")
    return x


def open_arrays(path: str) -> np.ndarray | np.lib.npyio.NpzFile:
    """A .npy array or an open .npz archive; never unpickles."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise QuantuneError(f"{path}: cannot read array file ({exc})") from None


def _array_samples(
    path: str, inputs: Sequence[TensorSpec], notes: list[str] | None
) -> Iterator[list[np.ndarray]]:
    loaded = open_arrays(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            missing = [s.name for s in inputs if s.name not in loaded.files]
            if missing and len(inputs) == 1 and len(loaded.files) == 1:
                arrays = [loaded[loaded.files[0]]]
            elif missing:
                raise QuantuneError(f"{path}: no array named {', '.join(missing)}")
            else:
                arrays = [loaded[s.name] for s in inputs]
    else:
        if len(inputs) != 1:
            raise QuantuneError(
                f"{path}: a .npy holds one array, the model has {len(inputs)} inputs"
            )
        arrays = [loaded]
    yield from split_samples(path, arrays, inputs, notes)


def _stacked_on_batch(a: np.ndarray, spec: TensorSpec) -> bool:
    """Several samples along the batch axis of a batch-1 input: (N, C, H, W) for (1, C, H, W)."""
    return (
        a.ndim == len(spec.shape) >= 1
        and spec.shape[0] == 1
        and a.shape[0] > 1
        and tuple(a.shape[1:]) == spec.shape[1:]
    )


def split_samples(
    where: str,
    arrays: Sequence[np.ndarray],
    inputs: Sequence[TensorSpec],
    notes: list[str] | None = None,
) -> Iterator[list[np.ndarray]]:
    """The samples in one array per model input: a sample itself, several along a leading extra
    axis, or (for batch-1 inputs) several stacked on the batch axis, which `notes` records."""
    pairs = list(zip(arrays, inputs, strict=True))
    if all(a.ndim == len(s.shape) + 1 for a, s in pairs):
        parts = [[a[i] for i in range(a.shape[0])] for a, _ in pairs]
    elif all(_stacked_on_batch(a, s) for a, s in pairs):
        parts = [[a[i : i + 1] for i in range(a.shape[0])] for a, _ in pairs]
        if notes is not None:
            note = f"{where}: {len(parts[0])} samples stacked on the batch axis of a batch-1 input"
            if note not in notes:
                notes.append(note)
    else:
        parts = [[a] for a, _ in pairs]
    if len({len(p) for p in parts}) != 1:
        raise QuantuneError(f"{where}: arrays hold different numbers of samples")
    for i in range(len(parts[0])):
        yield [_check(where, s, p[i]) for p, (_, s) in zip(parts, pairs, strict=True)]


def calibration_files(folder: str) -> list[str]:
    """Sorted data files of a calibration folder (or the one file given: an image or a
    .npy/.npz); refuses a missing, empty or mixed folder."""
    if os.path.isfile(folder):
        if not folder.lower().endswith(IMAGE_EXTENSIONS + ARRAY_EXTENSIONS):
            raise QuantuneError(
                f"{folder}: not calibration data (expected a folder, an image or a .npy/.npz)"
            )
        return [folder]
    if not os.path.isdir(folder):
        raise QuantuneError(f"{folder}: calibration data does not exist (a folder or a file)")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    files = [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]
    images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    arrays = [f for f in files if f.lower().endswith(ARRAY_EXTENSIONS)]
    if images and arrays:
        raise QuantuneError(f"{folder}: holds both images and .npy/.npz arrays; use one kind")
    if not images and not arrays:
        raise QuantuneError(
            f"{folder}: no calibration data (expected images {'/'.join(IMAGE_EXTENSIONS)} "
            "or .npy/.npz arrays)"
        )
    return images or arrays


def check_calibration(folder: str, preprocess: Preprocess | TextSource | None) -> bool:
    """Refuses missing or mismatched calibration data before any work; True for sentences."""
    if isinstance(preprocess, TextSource) or (os.path.isfile(folder) and is_text(folder)):
        if not isinstance(preprocess, TextSource):
            raise QuantuneError(f"{folder}: sentences need a tokenizer (--tokenizer JSON)")
        if not (os.path.isfile(folder) and is_text(folder)):
            raise QuantuneError(f"{folder}: a tokenizer needs a .txt file of sentences to read")
        sentences(folder)
        return True
    calibration_files(folder)
    return False


def iter_samples(
    folder: str | Sequence[Sequence[np.ndarray]],
    inputs: Sequence[TensorSpec],
    preprocess: Preprocess | TextSource | None = None,
    limit: int | None = None,
    notes: list[str] | None = None,
) -> Iterator[list[np.ndarray]]:
    """One list of input arrays per sample, in file-name order; `folder` may also be one file,
    or samples already in memory (lists of arrays in input order, as `api` makes them).

    The folder and the image/input compatibility are checked now; each file when it is read.
    Array files may stack samples (see split_samples); `notes` collects what was assumed.
    """
    if not isinstance(folder, str):
        return iter(list(folder)[:limit])
    if check_calibration(folder, preprocess):
        assert isinstance(preprocess, TextSource)
        return text_samples(folder, preprocess, inputs, limit)
    files = calibration_files(folder)
    is_images = files[0].lower().endswith(IMAGE_EXTENSIONS)
    if is_images:
        if len(inputs) != 1:
            raise QuantuneError(
                f"{folder}: images can feed a model with one input; this one has {len(inputs)}"
            )
        spec = preprocess or PRESETS["imagenet"]
        expected = (
            (1, 3, spec.crop, spec.crop) if spec.layout == "NCHW" else (1, spec.crop, spec.crop, 3)
        )
        if inputs[0].shape != expected:
            raise QuantuneError(
                f"model input '{inputs[0].name}' has shape {inputs[0].shape}; images preprocessed "
                f"with crop {spec.crop} and layout {spec.layout} give {expected}"
            )
    return _generate(files, inputs, spec if is_images else None, limit, notes)


def _generate(
    files: Sequence[str],
    inputs: Sequence[TensorSpec],
    spec: Preprocess | None,
    limit: int | None,
    notes: list[str] | None,
) -> Iterator[list[np.ndarray]]:
    is_images = spec is not None
    produced = 0
    for path in files:
        if limit is not None and produced >= limit:
            return
        if is_images:
            yield [_check(path, inputs[0], load_image(path, spec))]
            produced += 1
        else:
            for sample in _array_samples(path, inputs, notes):
                if limit is not None and produced >= limit:
                    return
                yield sample
                produced += 1


def samples_in_memory(
    data: object, inputs: Sequence[TensorSpec], notes: list[str] | None = None
) -> list[list[np.ndarray]]:
    """Calibration data held in Python, as the peers take it, checked into samples: an array
    (a single-input model), a dict of arrays by input name, or an iterable of those (or of
    lists of arrays in input order), an onnxruntime CalibrationDataReader (`get_next()` until
    None) or an nncf.Dataset (`get_inference_data()`). Each array may hold one sample or stack
    several (see split_samples)."""
    if hasattr(data, "get_inference_data"):
        data = data.get_inference_data()
    if hasattr(data, "get_next"):
        reader = data
        data = iter(reader.get_next, None)
    items = [data] if isinstance(data, (np.ndarray, dict)) else data
    if not hasattr(items, "__iter__"):
        raise QuantuneError(
            f"calibration data of type {type(data).__name__}: expected a folder or file path, "
            "an array, a dict of arrays or an iterable of them"
        )
    samples: list[list[np.ndarray]] = []
    for k, item in enumerate(items):  # type: ignore[arg-type]
        where = f"calibration item {k}"
        if isinstance(item, dict):
            missing = [s.name for s in inputs if s.name not in item]
            if missing:
                raise QuantuneError(f"{where}: no array for input {', '.join(missing)}")
            arrays = [np.asarray(item[s.name]) for s in inputs]
        elif isinstance(item, (list, tuple)):
            arrays = [np.asarray(a) for a in item]
        else:
            arrays = [np.asarray(item)]
        if len(arrays) != len(inputs):
            raise QuantuneError(
                f"{where}: {len(arrays)} arrays for a model with {len(inputs)} inputs"
            )
        samples.extend(split_samples(where, arrays, inputs, notes))
    if not samples:
        raise QuantuneError("no calibration data (the iterable was empty)")
    return samples
