"""Formats stage results as text and JSON. It formats; it computes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import __version__
from .calibrate import CalibrationResult
from .importer import ImportedModel
from .layers import Layer
from .observers import TensorStats


def layer_table_text(layers: Sequence[Layer]) -> str:
    rows = [f"{'id':>4}  {'kind':<15} {'onnx':<8} {'input':<20} {'weight':<18} node"]
    for layer in layers:
        rows.append(
            f"{layer.id:>4}  {layer.kind:<15} {layer.onnx_op:<8} "
            f"{'x'.join(map(str, layer.input_shape)):<20} "
            f"{'x'.join(map(str, layer.weight_shape)):<18} {layer.label}"
        )
    return "\n".join(rows)


def layer_table_json(model: ImportedModel, layers: Sequence[Layer]) -> str:
    return json.dumps(
        {
            "tool": f"quantune-iree {__version__}",
            "model": model.path,
            "model_sha256": model.sha256,
            "layers": [
                {
                    "id": layer.id,
                    "node": layer.node,
                    "onnx_op": layer.onnx_op,
                    "kind": layer.kind,
                    "op_name": layer.op_name,
                    "input_shape": list(layer.input_shape),
                    "weight_shape": list(layer.weight_shape),
                    "output_shape": list(layer.output_shape),
                    "weight_is_constant": layer.weight_is_constant,
                }
                for layer in layers
            ],
        },
        indent=1,
    )


def calibration_json(model: ImportedModel, result: CalibrationResult) -> str:
    def stats(s: TensorStats) -> dict[str, float]:
        return {"min": s.min, "max": s.max, "mean": s.mean, "std": s.std, "count": s.count}

    return json.dumps(
        {
            "tool": f"quantune-iree {__version__}",
            "model": model.path,
            "model_sha256": model.sha256,
            "samples": result.samples,
            "inference_passes": result.inference_passes,
            "num_taps": result.num_taps,
            "layers": [
                {
                    "id": lc.layer_id,
                    "node": lc.node,
                    "input": stats(lc.input),
                    "output": stats(lc.output),
                }
                for lc in result.layers
            ],
        },
        indent=1,
    )


def calibration_summary(result: CalibrationResult) -> str:
    return (
        f"FP32 pass: {result.samples} samples, {result.num_taps} taps over "
        f"{len(result.layers)} layers, compile {result.compile_seconds:.1f} s, "
        f"run {result.run_seconds:.1f} s, peak memory {result.peak_rss_mb:.0f} MB"
    )
