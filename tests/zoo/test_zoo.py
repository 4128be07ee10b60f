"""The torch-free checkpoint reader and the model zoo.

Checkpoints are written here without torch: stand-in `torch` modules make `pickle` emit the
same global names and persistent ids torch's own serializer does.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import onnx
import pytest
from conftest import SHARED_EVAL
from quantune_iree.cli import main
from quantune_iree.errors import QuantuneError
from quantune_iree.zoo.checkpoint import load_state_dict


class _FakeTorch:
    """sys.modules entries named like torch's, so pickle writes torch's global names."""

    def __enter__(self) -> _FakeTorch:
        torch = types.ModuleType("torch")
        utils = types.ModuleType("torch._utils")

        class FloatStorage:
            pass

        FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

        def _rebuild_tensor_v2(*args):  # noqa: ANN002, ANN202
            raise AssertionError("never called while writing")

        _rebuild_tensor_v2.__module__ = "torch._utils"
        _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
        torch.FloatStorage = FloatStorage
        torch._utils = utils
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
        self.torch, self.utils = torch, utils
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Tensor:
    """Pickles as torch's rebuild of a `shape`/`strides` view of the storage `arr`."""

    def __init__(self, fake: _FakeTorch, key: str, arr: np.ndarray, shape: tuple, strides: tuple):
        self.fake, self.key, self.arr = fake, key, arr
        self.shape, self.strides = shape, strides

    def __reduce__(self):  # noqa: ANN204
        storage = ("storage", self.fake.torch.FloatStorage, self.key, "cpu", self.arr.size)
        return (
            self.fake.utils._rebuild_tensor_v2,
            (_Persistent(storage), 0, self.shape, self.strides, False, collections.OrderedDict()),
        )


class _Persistent:
    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return obj.pid if isinstance(obj, _Persistent) else None


def _legacy_bytes(tensors: dict[str, tuple[np.ndarray, tuple, tuple]]) -> bytes:
    """A legacy-format (torch < 1.6) checkpoint of `tensors` (name → storage, shape, strides)."""
    buf = io.BytesIO()
    with _FakeTorch() as fake:
        pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
        pickle.dump(1001, buf, protocol=2)
        pickle.dump({"little_endian": True, "protocol_version": 1001}, buf, protocol=2)
        state = collections.OrderedDict(
            (name, _Tensor(fake, str(i), *t)) for i, (name, t) in enumerate(tensors.items())
        )
        _Pickler(buf, protocol=2).dump(state)
    pickle.dump([str(i) for i in range(len(tensors))], buf, protocol=2)
    for a, _, _ in tensors.values():
        buf.write(struct.pack("<q", a.size))
        buf.write(a.astype("<f4").tobytes())
    return buf.getvalue()


def test_legacy_checkpoint_round_trip_with_strides(tmp_path) -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "m.pth"
    # "t" is w.T as torch stores it: a 4x3 view of the same storage with strides (1, 4).
    path.write_bytes(_legacy_bytes({"w": (w, (3, 4), (4, 1)), "t": (w, (4, 3), (1, 4))}))
    sd = load_state_dict(str(path))
    np.testing.assert_array_equal(sd["w"], w)
    np.testing.assert_array_equal(sd["t"], w.T)


def test_a_view_past_its_storage_is_refused(tmp_path) -> None:
    w = np.arange(12, dtype=np.float32)
    path = tmp_path / "m.pth"
    path.write_bytes(_legacy_bytes({"w": (w, (3, 4), (1, 4))}))
    with pytest.raises(QuantuneError, match="past the end"):
        load_state_dict(str(path))


def test_zip_checkpoint(tmp_path) -> None:
    w = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    buf = io.BytesIO()
    with _FakeTorch() as fake:
        _Pickler(buf, protocol=2).dump({"w": _Tensor(fake, "0", w, (2, 3), (3, 1))})
    path = tmp_path / "z.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/data/0", w.astype("<f4").tobytes())
    np.testing.assert_array_equal(load_state_dict(str(path))["w"], w)


class _Evil:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("touch pwned",))


def test_hostile_pickle_is_refused_without_running(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(QuantuneError, match="refuses to load"):
        load_state_dict(str(path))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("payload", [b"", b"not a pickle", b"PK\x03\x04junk"])
def test_malformed_checkpoints_are_one_clear_error(tmp_path, payload: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(payload)
    with pytest.raises(QuantuneError, match="bad.pth"):
        load_state_dict(str(path))


def test_truncated_storage_is_an_error(tmp_path) -> None:
    w = np.ones((4, 4), np.float32)
    path = tmp_path / "t.pth"
    path.write_bytes(_legacy_bytes({"w": (w, (4, 4), (4, 1))})[:-10])
    with pytest.raises(QuantuneError, match="truncated"):
        load_state_dict(str(path))


def test_zoo_cli_errors_exit_2_and_write_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert main(["zoo", "resnet999", "-o", str(out)]) == 2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(pickle.dumps({"w": _Evil()}, protocol=2))
    assert main(["zoo", "mobilenet_v2", "--weights", str(bad), "-o", str(out)]) == 2
    assert main(["zoo", "mobilenet_v2", "-o", str(tmp_path / "m.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("quantune-iree: error:") for line in err)
    assert "invalid choice" in err[0] and "mobilenet_v2" in err[0] and "refuses" in err[1]
    assert not out.exists()


def _weights_or_skip(name: str) -> None:
    from quantune_iree.zoo import graphs as zoo

    try:
        zoo.weights_path(zoo.MODELS[name])
    except QuantuneError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize(
    ("name", "convs", "pads"), [("mobilenet_v2", 52, 0), ("efficientnet_lite0", 49, 17)]
)
def test_zoo_export_matches_the_torch_export(tmp_path, name: str, convs: int, pads: int) -> None:
    """The exported model has the architecture's ops; where ../shared holds the torch export of
    the same weights, the logits agree to float rounding and the layer tables are the same."""
    _weights_or_skip(name)
    import onnxruntime as ort

    out = tmp_path / f"{name}.onnx"
    assert main(["zoo", name, "-o", str(out)]) == 0
    m = onnx.load(str(out))
    ops = collections.Counter(n.op_type for n in m.graph.node)
    assert (ops["Conv"], ops["Gemm"], ops["Pad"]) == (convs, 1, pads)
    assert m.opset_import[0].version == 17
    ref = SHARED_EVAL / "models" / f"{name}.onnx"
    if not ref.exists():
        pytest.skip(f"{ref} not present (../shared is optional)")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ours = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    theirs = ort.InferenceSession(str(ref)).run(None, {"input": x})[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    assert ours.argmax() == theirs.argmax()
    from quantune_iree.ir.importer import import_onnx
    from quantune_iree.ir.layers import layer_table

    ours_t = [(a.node, a.kind) for a in layer_table(import_onnx(str(out)))]
    theirs_t = [(a.node, a.kind) for a in layer_table(import_onnx(str(ref)))]
    assert ours_t == theirs_t


def test_zoo_refuses_a_weights_file_with_another_hash(tmp_path, monkeypatch) -> None:
    from quantune_iree.zoo import graphs as zoo

    fake = tmp_path / "fake_weights_pkg"
    (fake / "weights").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "weights" / "mobilenet_v2-b0353104.pth").write_bytes(b"tampered")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = zoo.MODELS["mobilenet_v2"]
    monkeypatch.setitem(
        zoo.MODELS, "mobilenet_v2", zoo.ZooModel(**{**model.__dict__, "module": fake.name})
    )
    with pytest.raises(QuantuneError, match="sha256"):
        zoo.build("mobilenet_v2")
