"""Evaluates mixed-precision plans on real images against the baselines.

For each model: one analysis (the two inference passes over the calibration images), then, for
each ranker and number K of FP32 layers, a mixed build run over the dev images beside the FP32
build. Rankers: `combined` (QuantuneV2, our default weights), each single metric, `random` (mean
of --seeds seeds), `loo` (leave-one-out accuracy search: every layer alone kept FP32, each
scored by agreement then output SQNR on the calibration images, one inference pass each) and
`greedy` (walks the leave-one-out order, keeping a layer only when it raises calibration
agreement/SQNR; one more pass per layer tried). `--ort` adds onnxruntime quantize_static (QDQ,
per-channel, the same calibration images) without and with excluding the combined top K.

Reports top-1 agreement with FP32 (all dev images), labelled top-1 (where dev.csv labels
exist), output SQNR, and the inference passes and wall time each ranker's search spent; with
--target-agreement P, the smallest K on a grid (0, the --ks, 16, 32, 48, all) reaching P%.
Writes <model>.md, <model>.csv and <model>.png (agreement vs K, one line per ranker) to --out.

Usage: python tools/evaluate.py [EVAL_DIR] [--models mobilenet_v2.onnx,...]
           [--ks 1,2,4,8,5%,10%] [--rankers combined,sqnr_delta,...,random,loo,greedy]
           [--seeds 5] [--target-agreement 99] [--ort] [--out docs/results]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from devset import CONFIDENT, DevSet, load_devset, load_imageset, ort_quantize_static
from quantune_iree.algo.ranking import rank_layers
from quantune_iree.algo.selection import fraction_k
from quantune_iree.backend.engine import Engine, Loaded
from quantune_iree.backend.targets import get_target
from quantune_iree.io.charts import agreement_png
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.job import JobOptions, rescale_inputs
from quantune_iree.model.graph import ImportedModel
from quantune_iree.model.plan import QuantConfig, with_precisions
from quantune_iree.model.results import Analysis
from quantune_iree.stages.analysis import analyze

PREPROCESS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}
SEARCH_RANKERS = ("loo", "greedy")
# agreement, labelled top-1, output SQNR dB, agreement where FP32 is confident (devset)
Score = tuple[float, float, float, float]


@dataclass
class Search:
    """A ranking found by running builds on the calibration images, with its cost."""

    order: list[int] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0


class Builds:
    """Compiles each plan once and scores it on an image set, caching both."""

    def __init__(self, model: ImportedModel, analysis: Analysis) -> None:
        self.model, self.analysis = model, analysis
        self.engine = Engine(model, get_target("host"))
        self.runners: dict[tuple[int, ...], Loaded] = {}
        self.scores: dict[tuple[int, tuple[int, ...]], Score] = {}

    def score(self, images: DevSet, fp32_ids: Sequence[int]) -> Score:
        key = tuple(sorted(fp32_ids))
        if (id(images), key) not in self.scores:
            if key not in self.runners:
                plan = with_precisions(self.analysis.int8_plan, key)
                self.runners[key] = self.engine.load(plan)
            self.scores[(id(images), key)] = images.score(images.run(self.runners[key]))
        return self.scores[(id(images), key)]


def leave_one_out(builds: Builds, calib: DevSet, layer_ids: Sequence[int], ref_s: float) -> Search:
    """Every layer alone FP32, scored on the calibration images; `ref_s` is what the FP32
    reference outputs there cost (one more pass)."""
    t0 = time.perf_counter()
    scored = [(builds.score(calib, [i])[::2], i) for i in layer_ids]
    order = [i for _, i in sorted(scored, key=lambda s: (-s[0][0], -s[0][1], s[1]))]
    return Search(order, len(layer_ids) + 1, time.perf_counter() - t0 + ref_s)


def greedy(builds: Builds, calib: DevSet, loo: Search, max_k: int, tries: int) -> Search:
    """Forward selection along the leave-one-out order: a layer joins the FP32 set when it
    raises (agreement, SQNR) on the calibration images; stops after `max_k` joined or `tries`
    layers tried. The rest of the order follows, as leave-one-out ranked it."""
    t0 = time.perf_counter()
    chosen: list[int] = []
    best = builds.score(calib, [])[::2]
    passes = loo.passes + 1
    for i in loo.order[:tries]:
        if len(chosen) >= max_k:
            break
        got = builds.score(calib, [*chosen, i])[::2]
        passes += 1
        if got > best:
            chosen.append(i)
            best = got
    rest = [i for i in loo.order if i not in chosen]
    return Search(chosen + rest, passes, time.perf_counter() - t0 + loo.seconds)


def parse_ks(text: str, n: int) -> list[tuple[int, str]]:
    """'1,2,5%' → [(1, '1'), (2, '2'), (3, '5%')] for n = 53 (a % rounds up)."""
    out: dict[int, str] = {}
    for tok in text.split(","):
        k = fraction_k(n, float(tok[:-1]) / 100) if tok.endswith("%") else int(tok)
        out.setdefault(min(k, n), tok if tok.endswith("%") else str(min(k, n)))
    return sorted(out.items())


GRID = (16, 32, 48)


def grid_scan(
    agreement_at: Callable[[int], float], n: int, targets: list[float], ks: list[int]
) -> dict[float, int]:
    """Smallest K on the grid (0, the --ks, 12, 16, 24, ..., n) whose agreement reaches each
    target; the scan stops once the highest target is reached. Agreement is not monotone in K,
    so this is a grid search, not a bisection."""
    found: dict[float, int] = {}
    for k in sorted({0, *ks, *[g for g in GRID if g < n], n}):
        a = agreement_at(k)
        for t in targets:
            if a >= t and t not in found:
                found[t] = k
        if len(found) == len(targets):
            break
    return {t: found.get(t, n) for t in targets}


def evaluate_model(name: str, args: argparse.Namespace) -> None:
    preset = PRESETS[PREPROCESS[name]]
    path = os.path.join(args.eval_dir, "models", name)
    plain = import_onnx(path)
    calib_dir = os.path.join(args.eval_dir, "images", "calib")
    config = replace(QuantConfig(), calibration=args.calibration, smoothing=args.smoothing)
    # The default configuration's rescaling (equalization, smoothing), as the product does it.
    opts = JobOptions(path, "", calib=calib_dir, preprocess=preset, config=config)
    model, _ = rescale_inputs(opts, plain, layer_table(plain))
    layers = layer_table(model)
    analysis = analyze(model, layers, lambda: iter_samples(calib_dir, model.inputs, preset), config)
    n = len(analysis.layers)
    ids = [m.layer_id for m in analysis.layers]
    dev = load_devset(args.eval_dir, model, preset, args.limit)
    t0 = time.perf_counter()
    calib = load_imageset(calib_dir, model, preset)
    ref_s = time.perf_counter() - t0
    builds = Builds(model, analysis)
    ks = parse_ks(args.ks, n)
    targets = (
        sorted(float(t) for t in args.target_agreement.split(",")) if args.target_agreement else []
    )
    searches: dict[str, Search] = {}
    rows: list[dict[str, object]] = []
    smallest: dict[str, dict[float, int]] = {}
    points: dict[str, dict[int, float]] = {}

    def ranking(ranker: str, seed: int) -> list[int]:
        if ranker in SEARCH_RANKERS:
            if "loo" not in searches:
                searches["loo"] = leave_one_out(builds, calib, ids[: args.loo_limit], ref_s)
            if ranker == "greedy" and "greedy" not in searches:
                searches["greedy"] = greedy(
                    builds, calib, searches["loo"], args.greedy_max, args.greedy_tries
                )
            return searches[ranker].order
        return [r.layer_id for r in rank_layers(analysis.layers, ranker, seed=seed)]

    def score_at(ranker: str, k: int) -> Score:
        seeds = range(args.seeds) if ranker == "random" else [0]
        vals = [builds.score(dev, ranking(ranker, s)[:k]) for s in seeds]
        mean = tuple(float(v) for v in np.mean(np.array(vals), axis=0))
        points.setdefault(ranker, {})[k] = 100 * mean[0]
        return mean  # type: ignore[return-value]

    def flush() -> None:  # results so far, so a long run that is stopped still leaves them
        labels = {r: r + (f" (mean of {args.seeds})" if r == "random" else "") for r in points}
        series = {labels[r]: sorted(p.items()) for r, p in points.items()}
        write_results(name, args, analysis, dev, n, rows, smallest, searches, series)

    for ranker in args.rankers.split(","):
        label = ranker + (f" (mean of {args.seeds})" if ranker == "random" else "")
        for k, k_label in [(0, "0"), *ks]:
            agree, labelled, sqnr, conf = score_at(ranker, k)
            search = searches.get(ranker, Search(passes=2, seconds=analysis.seconds))
            rows.append(
                {
                    "model": name,
                    "ranker": label,
                    "fp32_layers": k,
                    "k": k_label,
                    "agreement_pct": round(100 * agree, 1),
                    "confident_agreement_pct": round(100 * conf, 1),
                    "labelled_top1_pct": round(100 * labelled, 1),
                    "output_sqnr_db": round(sqnr, 2),
                    "search_passes": search.passes,
                    "search_seconds": round(search.seconds, 1),
                }
            )
            print(rows[-1], flush=True)
        if targets and ranker in args.target_rankers.split(","):
            smallest[label] = grid_scan(
                lambda k, r=ranker: 100 * score_at(r, k)[0], n, targets, [k for k, _ in ks]
            )
            print(f"{label}: smallest K reaching {smallest[label]}", flush=True)
            for k in sorted(points[ranker]):
                if k not in {0, *(k for k, _ in ks)}:
                    agree, labelled, sqnr, conf = score_at(ranker, k)
                    rows.append(
                        {
                            **rows[-1],
                            "fp32_layers": k,
                            "k": f"{k} (grid)",
                            "agreement_pct": round(100 * agree, 1),
                            "confident_agreement_pct": round(100 * conf, 1),
                            "labelled_top1_pct": round(100 * labelled, 1),
                            "output_sqnr_db": round(sqnr, 2),
                        }
                    )
        flush()

    if args.ort:
        import onnxruntime as ort

        combined = ranking("combined", 0)
        by_id = {lay.id: lay.node for lay in layers}
        in_name = model.inputs[0].name
        for k, k_label in [(0, "0"), *ks]:
            calib_xs = (s[0] for s in iter_samples(calib_dir, model.inputs, preset))
            excluded = [by_id[i] for i in combined[:k]]
            qdq = ort_quantize_static(model.path, in_name, calib_xs, excluded)
            sess = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
            agree, labelled, sqnr, conf = dev.score(
                np.stack([sess.run(None, {in_name: x})[0][0] for x in dev.inputs])
            )
            os.unlink(qdq)
            points.setdefault("onnxruntime QDQ", {})[k] = 100 * agree
            rows.append(
                {
                    "model": name,
                    "ranker": "onnxruntime QDQ (excluding combined top K)",
                    "fp32_layers": k,
                    "k": k_label,
                    "agreement_pct": round(100 * agree, 1),
                    "confident_agreement_pct": round(100 * conf, 1),
                    "labelled_top1_pct": round(100 * labelled, 1),
                    "output_sqnr_db": round(sqnr, 2),
                    "search_passes": 1,
                    "search_seconds": "",
                }
            )
            print(rows[-1], flush=True)

    flush()


def write_results(
    name: str,
    args: argparse.Namespace,
    analysis: Analysis,
    dev: DevSet,
    n: int,
    rows: list[dict[str, object]],
    smallest: dict[str, dict[float, int]],
    searches: dict[str, Search],
    series: dict[str, list[tuple[int, float]]],
) -> None:
    full = next(r for r in rows if r["fp32_layers"] == 0)
    cfg = analysis.int8_plan.config
    config_text = (
        f"weight rounding {cfg.weight_rounding}, bias correction {cfg.bias_correction}, "
        f"equalization {'on' if cfg.equalization else 'off'}"
    )
    head = [
        f"## {name}",
        "",
        f"{n} quantizable layers. Calibration: {analysis.calibration.samples} images, "
        f"{args.calibration} ranges, otherwise the default configuration ({config_text}). "
        f"Dev: {len(dev.inputs)} images ({int(dev.confident().sum())} where FP32 is confident, "
        f"top-1 probability ≥ {CONFIDENT}; {len(dev.labelled)} labelled; FP32 labelled top-1 "
        f"{100 * dev.top1(dev.ref):.1f}%). Full INT8: {full['agreement_pct']}% agreement, "
        f"{full['output_sqnr_db']} dB output SQNR, "
        f"{full['confident_agreement_pct']}% agreement where FP32 is confident.",
        "",
        f"Analysis (combined and single-metric rankers): 2 inference passes, "
        f"{analysis.seconds:.1f} s.",
    ]
    for key, s in searches.items():
        head.append(
            f"{key}: {s.passes} inference passes over the calibration images (a build each), "
            f"{s.seconds:.1f} s: {s.seconds / analysis.seconds:.1f}× the analysis."
        )
    if smallest:
        targets = sorted(next(iter(smallest.values())), reverse=True)
        head += [
            "",
            f"Smallest K (of {n}) reaching a top-1 agreement, on the grid 0, "
            f"{args.ks}, {', '.join(map(str, GRID))}, {n}:",
            "",
            "| ranker | " + " | ".join(f"≥ {t:g}%" for t in targets) + " |",
            "|---|" + "---|" * len(targets),
        ]
        head += [
            f"| {r} | " + " | ".join(str(found[t]) for t in targets) + " |"
            for r, found in smallest.items()
        ]
    table = [
        "",
        "| ranker | FP32 layers | top-1 agreement | agreement, confident | labelled top-1 "
        "| output SQNR dB |",
        "|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['ranker']} | {r['fp32_layers']}"
        + (f" ({str(r['k']).split(' ')[-1].strip('()')})" if not str(r["k"]).isdigit() else "")
        + f" | {r['agreement_pct']}% | {r['confident_agreement_pct']}% | "
        f"{r['labelled_top1_pct']}% | {r['output_sqnr_db']} |"
        for r in rows
    ]
    md = "\n".join(head + table) + "\n"
    print(md)
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, name.removesuffix(".onnx"))
    with open(stem + ".md", "w") as f:
        f.write(md)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    with open(stem + ".csv", "w") as f:
        f.write(buf.getvalue())
    with open(stem + ".png", "wb") as f:
        f.write(agreement_png(series, f"{name}: top-1 agreement with FP32 vs FP32 layers", n))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", nargs="?", default="../shared/eval")
    ap.add_argument("--models", default=",".join(PREPROCESS))
    ap.add_argument("--ks", default="1,2,4,8,5%,10%")
    ap.add_argument("--rankers", default="combined,random")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--calibration", default=QuantConfig().calibration)
    ap.add_argument("--smoothing", default=QuantConfig().smoothing)
    ap.add_argument("--greedy-max", type=int, default=8, help="greedy stops after this many")
    ap.add_argument("--greedy-tries", type=int, default=16, help="... or this many tried")
    ap.add_argument("--target-agreement", default=None, metavar="PCT[,PCT..]")
    ap.add_argument("--target-rankers", default="combined,random,loo,greedy")
    ap.add_argument("--limit", type=int, default=None, help="first N dev images only")
    ap.add_argument("--loo-limit", type=int, default=None, help="search the first N layers only")
    ap.add_argument("--ort", action="store_true", help="also onnxruntime quantize_static")
    ap.add_argument("--out", default=None, help="folder for <model>.md, .csv and .png")
    args = ap.parse_args()
    for name in args.models.split(","):
        evaluate_model(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
