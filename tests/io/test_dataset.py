"""Calibration data: images and arrays in, checked samples out, one clear error otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from quantune_iree.errors import QuantuneError
from quantune_iree.io.dataset import PRESETS, Preprocess, iter_samples, load_image
from quantune_iree.model.graph import TensorSpec

IMG_INPUT = (TensorSpec("input", (1, 3, 8, 8), "float32"),)
SMALL = Preprocess(resize=10, crop=8)


def _write_image(path, color, size=(12, 10)) -> None:
    Image.new("RGB", size, color).save(path)


def test_image_preprocessing_matches_formula(tmp_path) -> None:
    _write_image(tmp_path / "a.png", (255, 0, 128))
    x = load_image(str(tmp_path / "a.png"), SMALL)
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    want = (np.array([255, 0, 128]) / 255.0 - np.array(SMALL.mean)) / np.array(SMALL.std)
    np.testing.assert_allclose(x[0, :, 4, 4], want, rtol=1e-5)
    tf = load_image(
        str(tmp_path / "a.png"),
        Preprocess(
            resize=10,
            crop=8,
            **{k: getattr(PRESETS["tf"], k) for k in ("pixel_scale", "mean", "std")},
        ),
    )
    np.testing.assert_allclose(tf[0, :, 0, 0], (np.array([255, 0, 128]) - 127) / 128, rtol=1e-6)
    nhwc = load_image(str(tmp_path / "a.png"), Preprocess(resize=10, crop=8, layout="NHWC"))
    np.testing.assert_array_equal(nhwc, x.transpose(0, 2, 3, 1))


def test_images_in_name_order(tmp_path) -> None:
    _write_image(tmp_path / "b.png", (0, 0, 0))
    _write_image(tmp_path / "a.jpg", (255, 255, 255))
    samples = list(iter_samples(str(tmp_path), IMG_INPUT, SMALL))
    assert len(samples) == 2 and samples[0][0].mean() > samples[1][0].mean()
    assert len(list(iter_samples(str(tmp_path), IMG_INPUT, SMALL, limit=1))) == 1


def test_arrays_npy_npz_and_batched(tmp_path) -> None:
    spec = (TensorSpec("x", (1, 4), "float32"),)
    np.save(tmp_path / "a.npy", np.ones((1, 4), np.float32))
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 1, 4), np.float32))
    samples = list(iter_samples(str(tmp_path), spec))
    assert len(samples) == 4 and samples[0][0].sum() == 4 and samples[1][0].sum() == 0


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones((1, 5), np.float32), r"shape \(1, 5\) does not match model input 'x' \(1, 4\)"),
        (np.ones((1, 4), np.float64), "dtype float64 does not match model input 'x' \\(float32\\)"),
        (np.array([[1, np.nan, 0, 0]], np.float32), "contains NaN or Inf"),
        (np.array([[1, np.inf, 0, 0]], np.float32), "contains NaN or Inf"),
    ],
)
def test_bad_arrays(tmp_path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(QuantuneError, match=message):
        list(iter_samples(str(tmp_path), (TensorSpec("x", (1, 4), "float32"),)))


def test_one_file_is_calibration_data_too(tmp_path) -> None:
    spec = (TensorSpec("x", (1, 4), "float32"),)
    np.save(tmp_path / "a.npy", np.ones((5, 1, 4), np.float32))
    assert len(list(iter_samples(str(tmp_path / "a.npy"), spec))) == 5
    np.savez(tmp_path / "b.npz", x=np.zeros((1, 4), np.float32))
    assert len(list(iter_samples(str(tmp_path / "b.npz"), spec))) == 1
    (tmp_path / "c.csv").write_text("1,2,3,4")
    with pytest.raises(QuantuneError, match="not calibration data"):
        iter_samples(str(tmp_path / "c.csv"), spec)
    (tmp_path / "d.txt").write_text("a sentence")  # sentences: io.text, with a tokenizer
    with pytest.raises(QuantuneError, match="sentences need a tokenizer"):
        iter_samples(str(tmp_path / "d.txt"), spec)


def test_samples_stacked_on_the_batch_axis_of_a_batch_1_model(tmp_path) -> None:
    """(64, 3, 8, 8) for a (1, 3, 8, 8) input: 64 samples, and a note says so."""
    stacked = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "batch.npy", stacked)
    notes: list[str] = []
    samples = list(iter_samples(str(tmp_path / "batch.npy"), IMG_INPUT, notes=notes))
    assert len(samples) == 6 and samples[2][0].shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(samples[2][0][0], stacked[2])
    assert notes == [
        f"{tmp_path / 'batch.npy'}: 6 samples stacked on the batch axis of a batch-1 input"
    ]
    np.save(tmp_path / "batch.npy", stacked[:, :, :7])  # not the input's shape after all
    with pytest.raises(QuantuneError, match="does not match model input"):
        list(iter_samples(str(tmp_path / "batch.npy"), IMG_INPUT))


def test_empty_missing_and_mixed_folders(tmp_path) -> None:
    with pytest.raises(QuantuneError, match="no calibration data"):
        iter_samples(str(tmp_path), IMG_INPUT)
    with pytest.raises(QuantuneError, match="does not exist"):
        iter_samples(str(tmp_path / "nope"), IMG_INPUT)
    _write_image(tmp_path / "a.png", (1, 2, 3))
    np.save(tmp_path / "b.npy", np.ones(3))
    with pytest.raises(QuantuneError, match="both images and"):
        iter_samples(str(tmp_path), IMG_INPUT)


def test_corrupt_image(tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(QuantuneError, match=r"broken\.jpg: cannot decode image"):
        list(iter_samples(str(tmp_path), IMG_INPUT, SMALL))


def test_images_for_a_model_that_is_not_an_image_model(tmp_path) -> None:
    _write_image(tmp_path / "a.png", (1, 2, 3))
    with pytest.raises(
        QuantuneError, match=r"has shape \(1, 1, 8, 8\); images .* give \(1, 3, 8, 8\)"
    ):
        iter_samples(str(tmp_path), (TensorSpec("input", (1, 1, 8, 8), "float32"),), SMALL)
