"""Formats stage results as text and JSON. It formats; it computes nothing."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Sequence

import numpy as np

from . import __version__
from .calibrate import CalibrationResult
from .dataset import Preprocess
from .importer import ImportedModel, TensorSpec
from .layers import Layer
from .observers import TensorStats
from .plan import Plan, plan_to_json
from .targets import Target


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


METRIC_COLUMNS = (
    "weight_sqnr_db",
    "weight_mse",
    "input_sqnr_db",
    "act_sqnr_db",
    "act_mse",
    "sqnr_delta_db",
)


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if abs(v) < 1e4 or not np.isfinite(v) else f"{v:.3e}"


def plan_rows(plan: Plan) -> list[dict[str, str]]:
    """One row per layer, most sensitive first (layers without a rank last, by id)."""
    ordered = sorted(plan.layers, key=lambda lp: (lp.rank is None, lp.rank or 0, lp.layer_id))
    rows = []
    for lp in ordered:
        row = {
            "rank": "" if lp.rank is None else str(lp.rank),
            "id": str(lp.layer_id),
            "node": lp.node,
            "precision": lp.precision,
            "score": _fmt(lp.score),
        }
        row.update({k: _fmt(lp.metrics.get(k)) for k in METRIC_COLUMNS})
        row["reason"] = lp.reason
        rows.append(row)
    return rows


def plan_csv(plan: Plan) -> str:
    rows = plan_rows(plan)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plan_markdown(plan: Plan, header: str = "") -> str:
    rows = plan_rows(plan)
    if not rows:
        return header + "\n(no layers)\n"
    cols = list(rows[0])
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c].replace("|", "/") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plan_summary(plan: Plan) -> str:
    fp32 = plan.fp32_layers
    names = ", ".join(f"{lp.layer_id}:{lp.node}" for lp in fp32[:8])
    more = f" (+{len(fp32) - 8} more)" if len(fp32) > 8 else ""
    return f"plan: {len(plan.int8_layers)} int8, {len(fp32)} fp32 of {len(plan.layers)} layers" + (
        f"; fp32: {names}{more}" if fp32 else ""
    )


def sensitivity_png(plan: Plan, width: int = 900) -> bytes:
    """A bar chart of the combined sensitivity score per layer, in graph order; FP32 layers red,
    INT8 blue. Drawn with Pillow (no plotting dependency)."""
    from PIL import Image, ImageDraw

    layers = [lp for lp in plan.layers if lp.score is not None]
    bar, gap, left, top = 12, 3, 330, 30
    height = top + max(1, len(layers)) * (bar + gap) + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text(
        (10, 8), "sensitivity (combined score), graph order; red = FP32, blue = INT8", fill="black"
    )
    scores = [lp.score or 0.0 for lp in layers]
    hi = max(scores) if scores and max(scores) > 0 else 1.0
    for i, lp in enumerate(layers):
        y = top + i * (bar + gap)
        label = f"{lp.layer_id:>3} {lp.node[-44:]}"
        draw.text((5, y), label, fill="black")
        length = int((width - left - 20) * max(lp.score or 0.0, 0.0) / hi)
        color = (200, 40, 40) if lp.precision == "fp32" else (40, 90, 200)
        draw.rectangle([left, y, left + max(length, 1), y + bar], fill=color)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sidecar_json(
    model: ImportedModel,
    plan: Plan,
    target: Target,
    vmfb_sha256: str,
    preprocess: Preprocess | None,
) -> str:
    """What an app needs to call the vmfb, and how it was made."""

    def spec(s: TensorSpec) -> dict[str, object]:
        return {"name": s.name, "shape": list(s.shape), "dtype": s.dtype}

    return (
        json.dumps(
            {
                "tool": f"quantune-iree {__version__}",
                "model": os.path.basename(model.path),
                "model_sha256": model.sha256,
                "vmfb_sha256": vmfb_sha256,
                "function": model.function,
                "target": {
                    "name": target.name,
                    "driver": target.driver,
                    "flags": list(target.flags),
                    "preset": target.preset,
                    "runtime_flags": list(target.runtime_flags),
                },
                "inputs": [spec(s) for s in model.inputs],
                "outputs": [spec(s) for s in model.outputs],
                "preprocessing": None if preprocess is None else dataclasses.asdict(preprocess),
                "plan": json.loads(plan_to_json(plan, f"quantune-iree {__version__}")),
            },
            indent=1,
        )
        + "\n"
    )
