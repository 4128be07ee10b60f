"""Charts as PNG bytes, drawn with matplotlib's Agg backend (no display needed): labelled axes,
values written on the marks, and no timestamp or version in the file, so the same inputs give
the same bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from ..model.plan import Plan

_FP32, _INT8 = "#c82828", "#285ac8"


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib Figure
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:  # noqa: ANN001 - matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def sensitivity_png(plan: Plan) -> bytes:
    return _png(sensitivity_figure(plan))


def sensitivity_figure(plan: Plan):  # noqa: ANN201 - matplotlib Figure
    """The combined sensitivity score per layer, in graph order, one labelled bar each (FP32
    red, INT8 blue) with its score written at its end."""
    layers = [lp for lp in plan.layers if lp.score is not None]
    fig = _figure(10.0, 1.2 + 0.22 * max(len(layers), 1))
    ax = fig.add_subplot()
    y = list(range(len(layers)))
    scores = [max(lp.score or 0.0, 0.0) for lp in layers]
    colors = [_FP32 if lp.precision == "fp32" else _INT8 for lp in layers]
    ax.barh(y, scores, color=colors, height=0.75)
    for yi, s in zip(y, scores, strict=True):
        ax.text(s, yi, f" {s:.3g}", va="center", fontsize=7)
    names = [lp.node if len(lp.node) <= 40 else "…" + lp.node[-39:] for lp in layers]
    ax.set_yticks(
        y, [f"{lp.layer_id} {n}" for lp, n in zip(layers, names, strict=True)], fontsize=7
    )
    ax.invert_yaxis()
    ax.set_xlabel("combined sensitivity score (higher: more sensitive)")
    ax.set_ylabel("layer (id, ONNX node), graph order")
    ax.set_xlim(0, (max(scores) if scores and max(scores) > 0 else 1.0) * 1.15)
    ax.set_title("Sensitivity per layer: red = kept FP32, blue = INT8")
    fig.tight_layout()
    return fig


Series = Mapping[str, Sequence[tuple[int, float]]]


def agreement_png(series: Series, title: str, n: int) -> bytes:
    return _png(agreement_figure(series, title, n))


def agreement_figure(series: Series, title: str, n: int):  # noqa: ANN201 - matplotlib Figure
    """Top-1 agreement (%) against the number of FP32 layers (log-2 axis), one line per
    ranker, each point labelled with its value."""
    fig = _figure(9.0, 5.4)
    ax = fig.add_subplot()
    for name, points in series.items():
        pts = sorted(points)
        ks, accs = [k for k, _ in pts], [a for _, a in pts]
        ax.plot(ks, accs, marker="o", label=name)
        for k, a in pts:
            ax.annotate(f"{a:.1f}", (k, a), textcoords="offset points", xytext=(0, 5), fontsize=6)
    ax.set_xscale("symlog", base=2, linthresh=1)
    ticks = sorted({0, 1, 2, 4, 8, 16, 32, n})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(f"FP32 layers (of {n}; log scale)")
    ax.set_ylabel("top-1 agreement with FP32 (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
