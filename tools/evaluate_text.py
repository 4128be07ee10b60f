"""Evaluates mixed-precision plans of a sentence encoder on held-out sentences against FP32.

One analysis (the two inference passes over the calibration sentences), then, per ranker and
number K of FP32 layers, a build run over the evaluation sentences beside the FP32 build. Reports
the cosine similarity of the primary output (the pooled sentence embedding) to FP32's, mean and
worst; nearest-neighbour agreement (each evaluation sentence's most similar other sentence, by
cosine of the embeddings, is the same as under FP32), on all and on those whose FP32 neighbour
is clear (CLEAR_MARGIN); and the embedding's SQNR. Rankers:
`combined` (the default), `random` (mean of --seeds draws) and `loo` (leave-one-out: each
candidate alone FP32, scored by output SQNR on the calibration sentences, one pass each).

Usage: python tools/evaluate_text.py MODEL.onnx --tokenizer tokenizer.json --calib calib.txt
           --eval eval.txt [--seq-len 64] [--ks 1,2,4] [--seeds 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from quantune_iree.algo.metrics import ErrorAccumulator, cosine_similarities
from quantune_iree.algo.ranking import rank_layers
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import iter_samples
from quantune_iree.io.text import TextSource, token_inputs
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.job import JobOptions, rescale_inputs
from quantune_iree.model.plan import Plan, QuantConfig, with_precisions
from quantune_iree.stages.analysis import analyze
from quantune_iree.stages.search import output_sqnr

# A sentence's FP32 nearest neighbour is "clear" when it is this much more cosine-similar than
# the runner-up: like images where FP32 is confident, a changed neighbour there is an error,
# elsewhere it may be a near-tie flipping.
CLEAR_MARGIN = 0.02


def _similarities(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return sim


def clear_rows(ref: np.ndarray, margin: float = CLEAR_MARGIN) -> np.ndarray:
    top2 = np.sort(_similarities(ref), axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) >= margin


def same_neighbour(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per row: whether its most cosine-similar other row is the same under both."""
    return _similarities(ref).argmax(axis=1) == _similarities(got).argmax(axis=1)


def embeddings(engine: Engine, plan: Plan | None, samples: list, index: int) -> np.ndarray:
    runner = engine.load(plan)
    return np.stack([runner(s)[index].reshape(-1) for s in samples])


def scores(ref: np.ndarray, got: np.ndarray) -> tuple[float, float, float, float, float]:
    cos = np.array(cosine_similarities(ref, got))
    acc = ErrorAccumulator()
    acc.add(ref, got)
    same = same_neighbour(ref, got)
    clear = float(np.mean(same[clear_rows(ref)]))
    return float(cos.mean()), float(cos.min()), float(np.mean(same)), clear, acc.sqnr_db


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--calib-limit", type=int, default=None)
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rankers", default="combined,random,loo")
    ap.add_argument("--smoothing", default=QuantConfig().smoothing)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    shapes = {n: [1, args.seq_len] for n in token_inputs(args.model)}
    source = TextSource(args.tokenizer)
    config = QuantConfig(smoothing=args.smoothing)
    opts = JobOptions(
        args.model, "", calib=args.calib, calib_limit=args.calib_limit, preprocess=source,
        input_shapes=shapes, config=config,
    )  # fmt: skip
    plain = import_onnx(args.model, shapes)
    model, _ = rescale_inputs(opts, plain, layer_table(plain))
    layers = layer_table(model)

    def calib():  # noqa: ANN202
        return iter_samples(args.calib, model.inputs, source, args.calib_limit)

    held = list(iter_samples(args.eval, model.inputs, source))
    t0 = time.perf_counter()
    analysis = analyze(model, layers, calib, config)
    print(f"analysis {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    engine = Engine(model, get_target("host"))
    index = model.primary_output
    ref = embeddings(engine, None, held, index)
    n = len(analysis.layers)
    rows = [("full INT8", 0, *scores(ref, embeddings(engine, analysis.int8_plan, held, index)))]
    ks = [int(k) for k in args.ks.split(",")]
    orders: dict[str, list[list[int]]] = {}
    for ranker in args.rankers.split(","):
        if ranker == "combined":
            orders[ranker] = [[r.layer_id for r in rank_layers(analysis.layers, "combined")]]
        elif ranker == "random":
            ids = [m.layer_id for m in analysis.layers]
            rngs = [np.random.default_rng(s) for s in range(args.seeds)]
            orders[ranker] = [list(rng.permutation(ids)) for rng in rngs]
        elif ranker == "loo":
            alone = {
                m.layer_id: output_sqnr(
                    engine,
                    with_precisions(analysis.int8_plan, (m.layer_id,)),
                    analysis.calibration,
                    calib(),
                )
                for m in analysis.layers
            }
            orders[ranker] = [sorted(alone, key=lambda i: -alone[i])]
    for ranker, draws in orders.items():
        for k in ks:
            got = [
                scores(
                    ref,
                    embeddings(
                        engine, with_precisions(analysis.int8_plan, tuple(o[:k])), held, index
                    ),
                )
                for o in draws
            ]
            rows.append((f"{ranker}, top {k}", k, *np.mean(got, axis=0)))
            print(rows[-1], file=sys.stderr, flush=True)
    name = os.path.basename(args.model)
    acts = sum(lay.activation_matmul for lay in layers)
    lines = [
        f"{name}: {len(held)} held-out sentences, sequence length {args.seq_len}, "
        f"{analysis.calibration.samples} calibration sentences; {n} quantizable layers "
        f"({n - acts} with a weight, {acts} activation x activation); first layers chosen: "
        + "; ".join(f"{r} {list(map(int, o[0][: max(ks)]))}" for r, o in orders.items()),
        "",
        f"NN agreement, clear: on the {int(clear_rows(ref).sum())} sentences whose FP32 nearest "
        f"neighbour is at least {CLEAR_MARGIN} more cosine-similar than the runner-up.",
        "",
        "| build | FP32 layers | cosine mean | cosine worst | NN agreement | NN agreement, clear "
        "| embedding SQNR dB |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, k, mean, worst, nn, clear, sq in rows:
        lines.append(
            f"| {label} | {k} | {mean:.4f} | {worst:.4f} | {100 * nn:.1f}% | {100 * clear:.1f}% "
            f"| {sq:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
