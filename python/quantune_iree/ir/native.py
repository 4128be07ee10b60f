"""Loads the C++ extension, checks it matches the installed IREE, and maps its errors.

Every call into `_native` goes through this module so that a failed pass becomes a
QuantuneError in exactly one place.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import QuantuneError

try:
    from .. import _native
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        f"quantune_iree._native could not be loaded ({exc}); reinstall with `pip install .` "
        "next to iree-base-compiler==3.13.0"
    ) from exc

_installed = importlib.metadata.version("iree-base-compiler")
if _installed != _native.IREE_COMPILER_VERSION:
    raise ImportError(
        f"quantune_iree was built against iree-base-compiler=={_native.IREE_COMPILER_VERSION} "
        f"but {_installed} is installed; its C API is used directly, so install "
        f"iree-base-compiler=={_native.IREE_COMPILER_VERSION} or rebuild quantune-iree"
    )

T = TypeVar("T")


def _call(what: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except _native.NativeError as exc:
        raise QuantuneError(f"{what}: {exc}") from None


def layer_table(module: Any) -> list[Any]:
    """Native layer records of `module` (an iree.compiler.ir Module or module Operation)."""
    return _call("layer analysis failed", _native.layer_table, module)


def insert_taps(module: Any, layer_ids: Sequence[int] | None = None) -> Any:
    """Runs quantune-insert-taps in place; returns the native TapResult."""
    ids = None if layer_ids is None else list(layer_ids)
    return _call("quantune-insert-taps failed", _native.insert_taps, module, ids)


def verify(module: Any) -> None:
    _call("verification failed", _native.verify, module)


def quantize_layers(module: Any, layers: Sequence[Any]) -> None:
    """Runs quantune-quantize-layers in place with native LayerQuantization records."""
    _call("quantune-quantize-layers failed", _native.quantize_layers, module, list(layers))


LayerQuantization = _native.LayerQuantization
DiagnosticCapture = _native.DiagnosticCapture


def channels_last(module: Any) -> int:
    """Runs quantune-channels-last in place; returns how many float convs it rewrote."""
    return _call("quantune-channels-last failed", _native.channels_last, module)
