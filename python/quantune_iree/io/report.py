"""Every text the tool writes about a model, a plan or a job: layer tables, calibration JSON,
the plan's report (Markdown, CSV, chart), the sidecar, the per-layer reasons and the job
summary. It formats records; it computes nothing."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Mapping, Sequence

import numpy as np

from .. import __version__
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.plan import METRIC_NAMES, LayerPlan, Plan
from ..model.results import (
    COST_UNITS,
    CalibrationResult,
    JobOutcome,
    KindSpeed,
    RankedLayer,
    Selection,
    TensorStats,
    Verification,
    format_cost,
)

TOOL = f"quantune-iree {__version__}"


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
            "tool": TOOL,
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
            "tool": TOOL,
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


# --- why each layer got its precision (stored in the plan) --------------------------------


def rank_reasons(
    ranking: Sequence[RankedLayer], selection: Selection, ranker: str
) -> dict[int, str]:
    fp32, n = set(selection.fp32), len(ranking)
    return {
        r.layer_id: f"rank {r.rank + 1}/{n} by {ranker} sensitivity: "
        + (f"kept FP32 ({selection.rule})" if r.layer_id in fp32 else "INT8")
        for r in ranking
    }


def kind_reasons(layers: Sequence[Layer], ids: Sequence[int], target_name: str) -> dict[int, str]:
    kinds = {layer.id: layer.kind for layer in layers}
    return {
        lid: f"kept FP32: {kinds[lid]} layers do not pay in INT8 on {target_name} (the speed "
        "preset's default for this target)"
        for lid in ids
    }


def slow_reasons(
    layers: Sequence[Layer], slow: Mapping[int, KindSpeed], target_name: str
) -> dict[int, str]:
    kinds = {layer.id: layer.kind for layer in layers}
    return {
        lid: (
            f"INT8 does not pay on {target_name}: the FP32 model takes "
            f"{format_cost(s.fp32_cost, s.unit)}, the full-INT8 one "
            f"{format_cost(s.int8_cost, s.unit)}"
            if s.kind == "all"
            else f"INT8 slower on {target_name}: the model takes "
            f"{format_cost(s.fp32_cost, s.unit)} with its {kinds[lid]} layers FP32 vs "
            f"{format_cost(s.int8_cost, s.unit)} INT8"
        )
        for lid, s in slow.items()
    }


def fallback_reason(target_name: str) -> str:
    return f"{target_name} backend failed to compile it in int8"


# --- the plan's report --------------------------------------------------------------------


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
        values = {} if lp.metrics is None else dataclasses.asdict(lp.metrics)
        row.update({k: _fmt(values.get(k)) for k in METRIC_NAMES})
        row.update(_technique_columns(plan, lp))
        row["reason"] = lp.reason
        rows.append(row)
    return rows


def _technique_columns(plan: Plan, lp: LayerPlan) -> dict[str, str]:
    """What was applied to the layer's int8 form: its activation range method, its weight
    rounding (with the share of weights GPTQ moved off nearest), its bias correction and its
    input smoothing (strength, and the range of its channel scales)."""
    if lp.activation is None:
        return {"range": "", "weight_rounding": "", "bias_correction": "", "smoothing": ""}
    offsets = lp.weight_offsets
    rounding = (
        "nearest"
        if offsets is None
        else f"gptq ({100 * float(np.mean(np.asarray(offsets) != 0)):.0f}% moved)"
    )
    corr = (
        f"{plan.config.bias_correction} (up to {_fmt(float(np.max(np.abs(lp.bias_correction))))})"
        if lp.bias_correction
        else "none"
    )
    smoothed = plan.smoothing.get(lp.node)
    smooth = (
        f"α {smoothed.strength:g} (x{_fmt(min(smoothed.scales))}-{_fmt(max(smoothed.scales))})"
        if smoothed
        else "none"
    )
    return {
        "range": lp.range_method,
        "weight_rounding": rounding,
        "bias_correction": corr,
        "smoothing": smooth,
    }


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


def sensitivity_png(plan: Plan) -> bytes:
    """The sensitivity chart (io.charts)."""
    from .charts import sensitivity_png as chart

    return chart(plan)


# --- the job's summary: one list of facts, printed and written ----------------------------


_HOW = {
    "gptq": " (GPTQ, from the FP32 pass's input second moments)",
    "analytic": " (weight error x the FP32 pass's input means)",
    "empirical": " (measured in the INT8 pass: no extra pass)",
}


def _config_text(outcome: JobOutcome) -> str:
    """The quantization configuration and how each technique got its data."""
    cfg, probe = outcome.plan.config, outcome.equalization_probe
    smoothed = len(outcome.plan.smoothing)
    pairs = len(outcome.plan.equalization) - smoothed
    pct = f" ({cfg.percentile}%)" if cfg.calibration in ("percentile", "auto") else ""
    eq = f"; {pairs} conv pairs equalized before import" if pairs else "; no equalization"
    how = "by each layer's simulated int8 error" if cfg.smoothing == "auto" else "one strength"
    eq += f"; {smoothed} layer inputs smoothed ({how})" if smoothed else "; no smoothing"
    if (pairs or smoothed) and probe:
        eq += (
            f" (channel ranges and sampled inputs from a probe run over {probe[0]} "
            f"calibration samples before the analysis, {probe[1]:.1f} s)"
        )
    return (
        f"activation ranges: {cfg.calibration}{pct}; weights per-"
        f"{'channel' if cfg.per_channel else 'tensor'}, rounding {cfg.weight_rounding}"
        f"{_HOW.get(cfg.weight_rounding, '')}; bias correction {cfg.bias_correction}"
        f"{_HOW.get(cfg.bias_correction, '')}{eq}"
    )


def job_facts(outcome: JobOutcome) -> list[tuple[str, str]]:
    """(label, sentence) for what the job measured and decided, in order."""
    facts = [("note", note) for note in outcome.notes]
    a = outcome.analysis
    if a is not None:
        probe = outcome.equalization_probe
        extra = probe is not None and probe[0] >= a.calibration.samples
        facts.append(
            (
                "analysis",
                f"{a.inference_passes + extra} full inference passes "
                f"{'(FP32, INT8, and the equalization probe before them) ' if extra else ''}"
                f"over {a.calibration.samples} "
                f"calibration samples in {a.seconds:.1f} s; full-INT8 output SQNR "
                f"{a.int8.output_sqnr_db:.2f} dB, top-1 agreement "
                f"{100 * a.int8.top1_agreement:.1f}%{_cosine_text(a.int8.cosine)} on the "
                "calibration set",
            )
        )
    facts.append(("quantization", _config_text(outcome)))
    sel = outcome.selection
    if sel is not None:
        extra = f", {sel.extra_passes} extra inference passes" if sel.extra_passes else ""
        sqnr = (
            f", output SQNR {sel.output_sqnr_db:.2f} dB" if sel.output_sqnr_db is not None else ""
        )
        facts.append(("selection", f"{sel.rule}{extra}{sqnr}"))
    if outcome.kind_speeds:
        unit = outcome.kind_speeds[0].unit
        table = "; ".join(
            f"{s.kind} ({s.layers}): INT8 {s.int8_cost:.2f} vs FP32 {s.fp32_cost:.2f}"
            + (" -> FP32" if s.int8_slower else "")
            for s in outcome.kind_speeds
        )
        how = (
            "model latency on this host, median ms"
            if unit == "ms"
            else f"{COST_UNITS[unit]} of one run on {outcome.target_name}, estimated (a53sim: "
            "compute only, no caches or memory)"
        )
        facts.append(("speed by layer kind", f"{how}: {table}"))
    if outcome.latency is not None:
        plan_c, fp32_c = outcome.latency
        unit = outcome.latency_unit
        where = "latency on this host" if unit == "ms" else f"estimate for {outcome.target_name}"
        facts.append(
            (
                where,
                f"this plan {format_cost(plan_c, unit)}, FP32 {format_cost(fp32_c, unit)} "
                f"({fp32_c / plan_c:.2f}x FP32's speed)",
            )
        )
    if outcome.verification is not None:
        facts.append(("verification", verification_text(outcome.verification)))
    return facts


def verification_text(v: Verification) -> str:
    head = (
        f"on {v.device}, {v.samples} samples: outputs {v.output_sqnr_db:.1f} dB against the host "
        f"build of this plan, top-1 the same on {v.top1_same} of {v.samples}"
    )
    if v.outputs_agree:
        return f"{head} (>= {v.threshold_db:.0f} dB: passed)"
    worst = min(v.layers, key=lambda c: c.local_db)
    drift = next((c for c in v.layers if c.vs_host_db < v.threshold_db), v.layers[-1])
    return (
        f"{head}; every layer gives >= {v.threshold_db:.0f} dB against the host's result for "
        f"its own input on the device (worst: layer {worst.layer_id}, {worst.local_db:.1f} dB), "
        f"so no layer is miscompiled: the runs drift apart from layer {drift.layer_id} "
        f"('{drift.label}', {drift.precision}, {drift.vs_host_db:.1f} dB), where device and "
        "host FP32 rounding differences cross INT8 rounding steps (passed, layer by layer)"
    )


def report_markdown(outcome: JobOutcome) -> str:
    header = f"# {outcome.model_name}: quantune-iree sensitivity report\n"
    for label, text in job_facts(outcome):
        header += f"\n{label[0].upper()}{label[1:]}: {text}.\n"
    header += "\n" + plan_summary(outcome.plan) + "\n"
    return plan_markdown(outcome.plan, header)


def console_summary(outcome: JobOutcome, files: Sequence[str], written: bool = True) -> str:
    lines = [f"{label}: {text}" for label, text in job_facts(outcome)]
    lines.append(plan_summary(outcome.plan))
    if written:
        lines.append("wrote " + ", ".join(sorted(files)))
    return "\n".join(lines)


def _cosine_text(cosine: Sequence[float]) -> str:
    return (
        f", cosine similarity mean {np.mean(cosine):.4f}, worst {min(cosine):.4f}" if cosine else ""
    )
