"""Reads PyTorch checkpoints (`.pth` state dicts) into numpy arrays without torch and without
trusting the pickle.

A `.pth` file is a pickle: loading it with `pickle` (or `torch.load` without `weights_only`) runs
whatever callable the file names. This reader's unpickler resolves only the few names a state
dict needs (an OrderedDict, tensor rebuild functions, typed storages) and refuses every other
global, so a hostile file fails with a QuantuneError instead of running code.

Both formats are read: the legacy one (torch < 1.6: magic number, protocol, system info, the
pickle, then each storage as an int64 element count and raw little-endian bytes) and the zip
one (`archive/data.pkl` with storages in `archive/data/<key>`).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from ..errors import QuantuneError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _Storage:
    dtype: type
    numel: int
    array: np.ndarray | None = None


@dataclass
class _LazyTensor:
    """A tensor whose storage bytes come after the pickle (legacy format)."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def materialize(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise QuantuneError("checkpoint: a tensor's storage is missing from the file")
        if len(self.size) != len(self.stride) or min(self.stride, default=0) < 0:
            raise QuantuneError("checkpoint: a tensor has an invalid size/stride")
        if 0 in self.size:
            return np.empty(self.size, data.dtype)
        end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or end >= data.size:
            raise QuantuneError("checkpoint: a tensor reaches past the end of its storage")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * item for s in self.stride]
        )
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _LazyTensor:
    if not isinstance(storage, _Storage):
        raise QuantuneError("checkpoint: a tensor is not backed by a storage")
    return _LazyTensor(
        storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


def _rebuild_parameter(data: _LazyTensor, *_: Any) -> _LazyTensor:
    return data


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage], load_zip: Any = None):
        super().__init__(file)
        self.storages = storages
        self.load_zip = load_zip

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise QuantuneError(
                f"checkpoint: refuses to load '{module}.{name}': only tensors and dicts of "
                "tensors are read (the file may be hostile or not a state dict)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise QuantuneError(f"checkpoint: unexpected persistent id {pid!r:.60}")
        kind, key = pid[1], str(pid[2])
        if not isinstance(kind, _StorageType):
            raise QuantuneError("checkpoint: storage of an unknown type")
        numel = int(pid[4])
        view = pid[5] if len(pid) > 5 else None
        if key not in self.storages:
            storage = _Storage(kind.dtype, numel)
            if self.load_zip is not None:
                storage.array = self.load_zip(key, kind.dtype, numel)
            self.storages[key] = storage
        if view is not None:
            raise QuantuneError("checkpoint: storage views are not supported")
        return self.storages[key]


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    plain = _Unpickler(f, {})
    if plain.load() != _LEGACY_MAGIC:
        raise QuantuneError("checkpoint: not a PyTorch checkpoint (bad magic number)")
    plain.load()  # protocol version
    sys_info = plain.load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise QuantuneError("checkpoint: big-endian checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    result = _Unpickler(f, storages).load()
    keys = _Unpickler(f, {}).load()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise QuantuneError(f"checkpoint: storage {key} is listed but never used")
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * np.dtype(storage.dtype).itemsize
        raw = f.read(nbytes)
        if count != storage.numel or len(raw) != nbytes:
            raise QuantuneError("checkpoint: truncated or inconsistent storage data")
        storage.array = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    return result


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl")), None)
        if pkl is None:
            raise QuantuneError(f"{path}: zip checkpoint without data.pkl")
        root = pkl.removesuffix("data.pkl")

        def load(key: str, dtype: type, numel: int) -> np.ndarray:
            raw = z.read(f"{root}data/{key}")
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            if arr.size < numel:
                raise QuantuneError(f"{path}: storage {key} is truncated")
            return arr

        return _Unpickler(io.BytesIO(z.read(pkl)), {}, load_zip=load).load()


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of the state dict in the `.pth` file at `path`, as numpy arrays."""
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(f)
    except QuantuneError:
        raise
    except OSError as e:
        raise QuantuneError(f"{path}: cannot read checkpoint: {e.strerror or e}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        struct.error,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as e:
        raise QuantuneError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    state = _resolve(obj)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise QuantuneError(f"{path}: checkpoint is not a state dict of tensors")
    return dict(state)
