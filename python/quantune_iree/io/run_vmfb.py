"""`quantune-iree run`: run a compiled .vmfb on arrays or an image, for checking a build."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence

import numpy as np

from ..backend.runtime import Runner, run_module_cli
from ..errors import QuantuneError
from .dataset import IMAGE_EXTENSIONS, PRESETS, Preprocess, load_image, open_arrays
from .output import write_atomic


def _sidecar(vmfb: str) -> dict:
    path = vmfb + ".json"
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise QuantuneError(f"{path}: unreadable sidecar ({exc})") from None


def _load_input(path: str, spec: dict | None, preprocess: Preprocess | None) -> np.ndarray:
    if not os.path.exists(path):
        raise QuantuneError(f"{path}: no such file")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return load_image(path, preprocess or PRESETS["imagenet"])
    loaded = open_arrays(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            name = spec["name"] if spec and spec["name"] in loaded.files else loaded.files[0]
            return loaded[name]
    return loaded


def run_vmfb(
    vmfb: str,
    inputs: Sequence[str],
    driver: str | None = None,
    function: str | None = None,
    preset: str | None = None,
    output: str | None = None,
) -> str:
    if not os.path.isfile(vmfb):
        raise QuantuneError(f"{vmfb}: no such file")
    side = _sidecar(vmfb)
    function = function or side.get("function")
    if not function:
        raise QuantuneError(f"{vmfb}: no sidecar ({vmfb}.json); give --function")
    driver = driver or side.get("target", {}).get("driver") or "local-task"
    specs = side.get("inputs") or [None] * len(inputs)
    if len(specs) != len(inputs):
        raise QuantuneError(f"{vmfb}: the model has {len(specs)} inputs, got {len(inputs)}")
    pre = (
        PRESETS[preset]
        if preset
        else (
            Preprocess(
                **{
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in side["preprocessing"].items()
                }
            )
            if side.get("preprocessing") and "tokenizer" not in side["preprocessing"]
            else None  # a text model's inputs are token arrays here
        )
    )
    arrays = []
    for path, spec in zip(inputs, specs, strict=True):
        x = _load_input(path, spec, pre)
        if spec and (list(x.shape) != spec["shape"] or x.dtype.name != spec["dtype"]):
            raise QuantuneError(
                f"{path}: {x.dtype.name}{list(x.shape)} does not match input '{spec['name']}' "
                f"{spec['dtype']}{spec['shape']}"
            )
        arrays.append(x)
    out_specs = side.get("outputs") or [{"name": "output0"}]
    if driver.startswith("local"):
        with open(vmfb, "rb") as f:
            flags = side.get("target", {}).get("runtime_flags", ())
            results = Runner(f.read(), function, driver, flags)(arrays)
    else:
        results = run_module_cli(vmfb, function, arrays, len(out_specs), driver=driver)
    lines = []
    named = {}
    for i, r in enumerate(results):
        name = out_specs[i]["name"] if i < len(out_specs) else f"output{i}"
        named[name] = r
        line = f"{name}: {r.dtype.name}{list(r.shape)}"
        if r.ndim == 2 and r.shape[-1] >= 10:
            top = np.argsort(-r[0])[:5]
            line += "  top-5: " + ", ".join(f"{int(j)} ({r[0, j]:.3f})" for j in top)
        lines.append(line)
    if output:
        buf = io.BytesIO()
        np.savez(buf, **named)
        write_atomic(output, buf.getvalue())
        lines.append(f"wrote {output}")
    return "\n".join(lines)
