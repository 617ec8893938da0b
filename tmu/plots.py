"""Plotly figures from results: pure functions of a report dict or numpy arrays, never training.

Each figure's `CAPTIONS[name]` says in one sentence what "aligned with gold" looks like in it.
Colours: original grey, gold gold, unlearning methods from one qualitative palette.
"""

from __future__ import annotations

import html
import json
import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

ORIGINAL, GOLD, FLOOR = "#8c8c8c", "#d4a017", "#d62728"
PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b"]
SETS = ("forget", "retain", "test")
CLASS_COLORS = qualitative.Plotly + qualitative.Dark24

CAPTIONS = {
    "class_counts": (
        "Samples per class in the whole pool; the D / H / T split keeps these proportions."
    ),
    "embedding": (
        "Each dot is a training sample placed by the original model's penultimate features; drag "
        "a box or lasso to add samples to the forget set (selected ones are ringed)."
    ),
    "headline": (
        "Aligned with gold: each method's bars match gold's. Accuracy on the forget set should "
        "fall to gold's level, not to zero; agreement counts the forget samples where the model "
        "predicts gold's own class (gold-vs-gold for reference). For mislabeled images, the "
        "labelled accuracy falls and accuracy against the true labels rises toward gold."
    ),
    "per_class": (
        "Aligned with gold: each method's bar sits inside the gold band (min–max over gold "
        "seeds), not at the original model's height on the forget set."
    ),
    "gaps": (
        "Aligned with gold: every gap is no larger than the gold-vs-gold noise floor (red "
        "marker); agreement is aligned when it reaches the floor."
    ),
    "quadrants": (
        "Aligned with gold: all mass on the diagonal (aligned-easy and aligned-hard), none on "
        "over- or under-forgotten."
    ),
    "predictor": (
        "Aligned: the predicted hardness (colour) matches the true hardness (symbol) for both "
        "twin and forget samples."
    ),
    "mia": (
        "Aligned with gold: the method's membership-inference figures sit at the gold models' "
        "level (gold band), not at the original's."
    ),
    "compare": "Aligned with gold: a bar at or below the red gold-vs-gold noise floor.",
    "gap_memorisation": (
        "Forget samples binned by memorisation: the original's probability of the training label "
        "minus the gold ensemble's. High: only seeing the sample taught it, the samples unlearning "
        "must move; low: the rest of the data teaches it too. Against the gold ensemble."
    ),
    "gap_distance": (
        "Retained and test samples binned by their distance to the nearest forget sample in the "
        "original's features: unlearning that leaks into the neighbours of D_f shows as lower "
        "agreement in the nearest quarter. Against the gold ensemble."
    ),
    "membership_two_sided": (
        "Loss-threshold member rate on D_f minus the gold models' mean: a forget set that looks "
        "less like training data than under a retrained model is over-forgotten, and an attacker "
        "sees that too."
    ),
    "prediction_matrix": (
        "Aligned with gold: every sample on the diagonal (green), where the model predicts "
        "gold's own class; rows are the gold ensemble's class. Unlearning that only drives "
        "accuracy to zero moves the diagonal's mass off it."
    ),
    "embedding_panels": (
        "One projection for all panels (each model's features mapped onto the original's, then "
        "one PCA), so positions compare: aligned with gold, D_f (diamonds) sits where it sits in "
        "gold's panel. Select points in any panel to ring them in all three."
    ),
    "cka": (
        "Aligned with gold: each layer at least as similar to gold as another gold seed is (the "
        "red floor). A method that changed only the head keeps the original's curve on every "
        "layer but the last."
    ),
    "attack": (
        "Aligned with gold: the method's curves lie on gold's (dashed gold), not at zero: gold "
        "generalises, so its D_f still looks partly member-like; easy samples (gold right) "
        "should look like members, hard ones like unseen data."
    ),
    "attributions": (
        "Aligned with gold: the unlearned model's map looks like gold's (similarity near 1), not "
        "like the original's."
    ),
}


def method_names(report: dict) -> list[str]:
    """The unlearned models of a report, in order (twin-tuned variants NAME+twin included)."""
    return list(report.get("methods", report["config"]["methods"]))


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _nan(v):
    return float("nan") if v is None else float(v)


def class_counts(counts: np.ndarray, classes: list[str]) -> go.Figure:
    """Bar chart of the number of samples per class."""
    fig = go.Figure(
        go.Bar(x=[str(c) for c in classes], y=np.asarray(counts).tolist(), marker_color=PALETTE[0])
    )
    return fig.update_layout(
        title="Samples per class",
        xaxis_title="class",
        yaxis_title="samples",
        height=300,
        margin=dict(t=40, b=40, l=40, r=10),
    )


def embedding_scatter(
    xy: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    classes: list[str],
    selected: np.ndarray | None = None,
    projection: str = "PCA",
    colors: list[str] | None = None,
) -> go.Figure:
    """2-D embedding of the training set, one trace per group (`labels` indexes `classes`: the
    classes, or any other grouping such as "gold gets it wrong"); customdata = pool id of each
    point. Selected ids are drawn as open rings on top (a separate trace without customdata)."""
    colors = colors or CLASS_COLORS
    fig = go.Figure()
    for c, name in enumerate(classes):
        m = labels == c
        if m.any():
            fig.add_trace(
                go.Scatter(
                    x=xy[m, 0],
                    y=xy[m, 1],
                    mode="markers",
                    name=str(name),
                    customdata=ids[m],
                    marker=dict(size=5, color=colors[c % len(colors)]),
                    hovertemplate="id %{customdata}<extra>" + html.escape(str(name)) + "</extra>",
                )
            )
    if selected is not None and len(selected):
        m = np.isin(ids, selected)
        fig.add_trace(
            go.Scatter(
                x=xy[m, 0],
                y=xy[m, 1],
                mode="markers",
                name="selected",
                hoverinfo="skip",
                marker=dict(size=9, color="rgba(0,0,0,0)", line=dict(width=1.5, color="black")),
            )
        )
    return fig.update_layout(
        dragmode="lasso",
        height=480,
        title=f"Training set, original model's embedding ({projection})",
        xaxis_title=f"{projection} 1",
        yaxis_title=f"{projection} 2",
        margin=dict(t=40, b=40, l=40, r=10),
        legend=dict(itemsizing="constant"),
    )


def _gold_band(report: dict, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.array([[_nan(v) for v in g["per_class"][which]] for g in report["models"]["gold"]])
    present = ~np.isnan(rows).all(0)
    out = np.full((3, rows.shape[1]), np.nan)
    out[:, present] = [
        np.nanmean(rows[:, present], 0),
        np.nanmin(rows[:, present], 0),
        np.nanmax(rows[:, present], 0),
    ]
    return out[0], out[1], out[2]


def per_class_accuracy(report: dict, which: str, methods: list[str] | None = None) -> go.Figure:
    """Per-class accuracy on set `which` of original, gold (mean with min–max band) and methods."""
    models, classes = report["models"], [str(c) for c in report["dataset"]["classes"]]
    methods = methods if methods is not None else method_names(report)
    mean, lo, hi = _gold_band(report, which)
    present = ~np.isnan(mean)
    x = [c for c, p in zip(classes, present) if p]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=x,
            y=mean[present],
            name="gold (mean, band = seeds)",
            marker_color=GOLD,
            error_y=dict(
                type="data",
                symmetric=False,
                array=(hi - mean)[present],
                arrayminus=(mean - lo)[present],
                thickness=2,
                width=6,
            ),
        )
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=np.array([_nan(v) for v in models["original"]["per_class"][which]])[present],
            name="original",
            marker_color=ORIGINAL,
        )
    )
    for i, m in enumerate(methods):
        y = np.array([_nan(v) for v in models[m]["per_class"][which]])[present]
        fig.add_trace(go.Bar(x=x, y=y, name=m, marker_color=_color(i)))
    return fig.update_layout(
        barmode="group",
        title=f"Per-class accuracy on the {which} set",
        height=360,
        xaxis_title="class",
        yaxis=dict(title="accuracy", range=[0, 1.05]),
        margin=dict(t=40, b=40, l=40, r=10),
    )


GAP_METRICS = {
    "delta_forget": "|Δ_f| (accuracy gap)",
    "per_class_delta_forget": "per-class Δ",
    "activation_distance_forget": "activation distance",
    "js_forget": "JS divergence",
    "agreement_forget": "agreement",
}


def gaps_to_gold(report: dict, method: str) -> go.Figure:
    """Each gap of `method` to gold next to the gold-vs-gold noise floor (red diamond)."""
    vs, floor = report["models"][method]["vs_gold"], report.get("noise_floor") or {}
    names = list(GAP_METRICS.values())
    fig = go.Figure(
        go.Bar(
            x=names, y=[_nan(vs.get(k)) for k in GAP_METRICS], name=method, marker_color=PALETTE[0]
        )
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[_nan(floor.get(k)) for k in GAP_METRICS],
            mode="markers",
            name="gold-vs-gold noise floor",
            marker=dict(symbol="diamond", size=14, color=FLOOR),
        )
    )
    return fig.update_layout(
        title=f"{method}: gaps to gold vs the noise floor",
        height=340,
        margin=dict(t=40, b=40, l=40, r=10),
    )


QUADRANTS = [["aligned_easy", "over_forgotten"], ["under_forgotten", "aligned_hard"]]


def quadrant_table(quadrants: dict, n: int | None = None) -> go.Figure:
    """The 2×2 alignment table (rows: gold right / wrong; columns: unlearned right / wrong)."""
    z = [[_nan(quadrants.get(k)) for k in row] for row in QUADRANTS]
    text = [
        [
            f"{k.replace('_', '-')}<br>{_nan(quadrants.get(k)):.0%}"
            + (f" ({round(_nan(quadrants.get(k)) * n)})" if n else "")
            for k in row
        ]
        for row in QUADRANTS
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["unlearned right", "unlearned wrong"],
            y=["gold right", "gold wrong"],
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            showscale=False,
        )
    )
    return fig.update_layout(
        title="Alignment table (forget set)",
        height=300,
        yaxis=dict(autorange="reversed"),
        margin=dict(t=40, b=20, l=80, r=10),
    )


def predictor_view(
    twin_x: np.ndarray,
    twin_true_easy: np.ndarray,
    twin_pred_easy: np.ndarray,
    forget_x: np.ndarray | None,
    forget_true_easy: np.ndarray | None,
    forget_pred_easy: np.ndarray | None,
    features: tuple[str, ...] = ("DF", "AF", "CF"),
) -> go.Figure:
    """Scaled hardness features of twin and forget samples, pairwise; colour = predicted
    easy/hard, symbol = true easy/hard (twin: M_o right on H_f; forget: gold right)."""
    pairs = [(i, j) for i in range(len(features)) for j in range(i + 1, len(features))] or [(0, 0)]
    fig = make_subplots(
        rows=1,
        cols=len(pairs),
        subplot_titles=[f"{features[i]} vs {features[j]}" for i, j in pairs],
    )
    groups = [("twin", twin_x, twin_true_easy, twin_pred_easy, 6)]
    if forget_x is not None:
        groups.append(("forget", forget_x, forget_true_easy, forget_pred_easy, 10))
    for col, (i, j) in enumerate(pairs, start=1):
        for name, x, true, pred, size in groups:
            for p, colour in ((1, PALETTE[1]), (0, FLOOR)):
                for t, symbol in ((1, "circle"), (0, "x")):
                    m = (np.asarray(pred) == p) & (np.asarray(true) == t)
                    said, truth = "easy" if p else "hard", "easy" if t else "hard"
                    label = f"{name}: predicted {said}, true {truth}"
                    fig.add_trace(
                        go.Scatter(
                            x=x[m, i],
                            y=x[m, j],
                            mode="markers",
                            name=label,
                            legendgroup=label,
                            showlegend=col == 1,
                            marker=dict(
                                color=colour,
                                symbol=symbol,
                                size=size,
                                opacity=0.5 if name == "twin" else 0.95,
                            ),
                        ),
                        row=1,
                        col=col,
                    )
    return fig.update_layout(
        title="Predictor view: hardness features (scaled)",
        height=380,
        margin=dict(t=60, b=40, l=40, r=10),
    )


def gap_bins(bins, metric: str = "agreement") -> go.Figure:
    """`tmu.inspect.GapBins` as grouped bars: per bin (with its sample count), each model's
    agreement with the gold ensemble, or its accuracy gap to it (`metric="delta"`)."""
    values = bins.agreement if metric == "agreement" else bins.delta
    x = [f"{name} ({n})" for name, n in zip(bins.labels, bins.counts)]
    fig = go.Figure(
        [
            go.Bar(x=x, y=v, name=m, marker_color=ORIGINAL if m == "original" else _color(i))
            for i, (m, v) in enumerate(values.items())
        ]
    )
    title = "agreement with gold" if metric == "agreement" else "accuracy − gold's"
    return fig.update_layout(
        barmode="group",
        title=f"{title}, by {bins.by}",
        yaxis=dict(title=title, range=[0, 1.05] if metric == "agreement" else None),
        xaxis_title=f"{bins.by} (samples)",
        height=340,
        margin=dict(t=40, b=40, l=50, r=10),
    )


def membership_two_sided(gaps: dict[str, float]) -> go.Figure:
    """Each model's member rate on D_f minus gold's: above 0 the forget set still looks like
    training data (under-forgetting), below 0 less so than under a retrained model
    (over-forgetting)."""
    names = list(gaps)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[gaps[n] for n in names],
            marker_color=[PALETTE[3] if gaps[n] < 0 else PALETTE[1] for n in names],
            text=[f"{gaps[n]:+.2f}" for n in names],
            textposition="outside",
        )
    )
    fig.add_hline(y=0, line=dict(color=GOLD, width=3), annotation_text="gold")
    return fig.update_layout(
        title="Membership on D_f against gold's: above = under-forgotten, below = over-forgotten",
        yaxis_title="member rate − gold's",
        height=320,
        margin=dict(t=50, b=40, l=50, r=10),
    )


def diagonal() -> go.Scatter:
    """The chance line of an ROC plot."""
    return go.Scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        line=dict(color="#bbbbbb", dash="dot"),
        showlegend=False,
        hoverinfo="skip",
    )


def predictor_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float) -> go.Figure:
    """The hardness predictor's ROC on the twin: out-of-fold p(hard) against "the twin's gold gets
    the sample wrong" (the diagonal is chance)."""
    fig = go.Figure([diagonal()])
    fig.add_trace(
        go.Scatter(
            x=fpr,
            y=tpr,
            mode="lines",
            name=f"predictor (AUC {auc:.3f})",
            line=dict(color=PALETTE[0]),
        )
    )
    return fig.update_layout(
        title="The predictor on the twin (held-out folds)",
        xaxis=dict(title="easy samples called hard", range=[0, 1]),
        yaxis=dict(title="hard samples called hard", range=[0, 1.02]),
        height=320,
        margin=dict(t=40, b=40, l=50, r=10),
    )


def mia_figure(report: dict, methods: list[str] | None = None) -> go.Figure:
    """Membership-inference figures on the forget set: member rate and AUC forget-vs-test, per
    model,
    with the gold models' range as a band."""
    models = report["models"]
    methods = methods if methods is not None else method_names(report)
    names = ["original", *methods]
    keys = {
        "forget_member_rate": "forget-set member rate",
        "auc_forget_vs_test": "AUC forget vs test",
    }
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(keys.values()))
    for col, key in enumerate(keys, start=1):
        golds = [g["mia"][key] for g in models["gold"]]
        fig.add_hrect(
            y0=min(golds),
            y1=max(golds) + 1e-3,
            fillcolor=GOLD,
            opacity=0.3,
            line_width=0,
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Bar(
                x=["gold", *names],
                y=[float(np.mean(golds)), *[models[n]["mia"][key] for n in names]],
                marker_color=[GOLD, ORIGINAL, *[_color(i) for i in range(len(methods))]],
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    return fig.update_layout(
        title="Membership inference (forget set)", height=340, margin=dict(t=60, b=40, l=40, r=10)
    )


def forget_headline(report: dict) -> go.Figure:
    """The forget set at a glance: accuracy (on the labels trained on), agreement with gold and,
    for a mislabeled request, accuracy against the true labels, for the original, gold (mean
    over seeds; agreement = gold-vs-gold) and every method."""
    models, golds = report["models"], report["models"]["gold"]
    names = ["original", "gold", *method_names(report)]
    floor = (report.get("noise_floor") or {}).get("agreement_forget")

    def figures(name: str) -> dict[str, float]:
        if name == "gold":
            out = {
                "accuracy on D_f": float(np.mean([g["acc"]["forget"] for g in golds])),
                "agreement with gold": _nan(floor),
            }
            if "acc_true_forget" in golds[0]:
                out["accuracy vs true labels"] = float(
                    np.mean([g["acc_true_forget"] for g in golds])
                )
            return out
        e = models[name]
        out = {
            "accuracy on D_f": e["acc"]["forget"],
            "agreement with gold": e["vs_gold"]["agreement_forget"],
        }
        if "acc_true_forget" in e:
            out["accuracy vs true labels"] = e["acc_true_forget"]
        return out

    rows = {n: figures(n) for n in names}
    colors = {"original": ORIGINAL, "gold": GOLD}
    fig = go.Figure()
    for i, n in enumerate(names):
        fig.add_trace(
            go.Bar(
                x=list(rows[n]),
                y=list(rows[n].values()),
                name=n,
                marker_color=colors.get(n, _color(i - 2)),
                text=[f"{v:.2f}" for v in rows[n].values()],
                textposition="outside",
            )
        )
    return fig.update_layout(
        barmode="group",
        title="The forget set: accuracy and agreement with gold",
        height=360,
        yaxis=dict(title="fraction of D_f", range=[0, 1.12]),
        margin=dict(t=40, b=40, l=40, r=10),
    )


def compare_rows(report: dict) -> list[dict]:
    """One row per method: the leaderboard's columns."""
    rows = []
    for m in method_names(report):
        e = report["models"][m]
        vs = e["vs_gold"]
        rows.append(
            {
                "method": m,
                "Δ_f": vs["delta_forget"],
                "agreement": vs["agreement_forget"],
                "per-class Δ": vs["per_class_delta_forget"],
                "test acc": e["acc"]["test"],
                "forget acc": e["acc"]["forget"],
                **(
                    {"forget acc (true labels)": e["acc_true_forget"]}
                    if "acc_true_forget" in e
                    else {}
                ),
                "MIA member rate": e["mia"]["forget_member_rate"],
                "MIA AUC": e["mia"]["auc_forget_vs_test"],
                "seconds": e["seconds"],
                "retrain ratio": e.get("retrain_time_ratio"),
            }
        )
    return rows


def compare_bars(report: dict, metric: str = "delta_forget") -> go.Figure:
    """|Δ_f| (or another vs_gold metric) per method against the gold-vs-gold noise floor."""
    methods = method_names(report)
    y = [report["models"][m]["vs_gold"][metric] for m in methods]
    fig = go.Figure(
        go.Bar(x=methods, y=y, marker_color=[_color(i) for i in range(len(methods))], name=metric)
    )
    floor = (report.get("noise_floor") or {}).get(metric)
    if floor is not None and not math.isnan(floor):
        fig.add_hline(
            y=floor, line=dict(color=FLOOR, dash="dash"), annotation_text="gold-vs-gold noise floor"
        )
    return fig.update_layout(
        title=f"{GAP_METRICS.get(metric, metric)} per method",
        height=340,
        yaxis_title=GAP_METRICS.get(metric, metric),
        margin=dict(t=40, b=40, l=40, r=10),
    )


def attribution_grid(
    image: np.ndarray,
    maps: dict[str, dict[str, np.ndarray]],
    similarity: dict[str, dict[str, float]],
    zero: dict[str, dict[str, bool]],
) -> go.Figure:
    """One sample: the input image, then one row per attribution method and one column per model,
    each map as a heatmap titled with its cosine similarity to gold's; all-zero maps say so."""
    methods = list(maps)
    models = list(maps[methods[0]])
    titles = []
    for m in methods:
        for name in models:
            s = similarity[m][name]
            titles.append(
                f"{m} · {name}<br>"
                + (
                    "all-zero map"
                    if zero[m][name]
                    else f"sim. to gold {s:.2f}"
                    if not math.isnan(s)
                    else "gold all-zero"
                )
            )
    fig = make_subplots(
        rows=len(methods),
        cols=len(models) + 1,
        subplot_titles=[
            "input",
            *titles[: len(models)],
            *[
                t
                for r in range(1, len(methods))
                for t in ["", *titles[r * len(models) : (r + 1) * len(models)]]
            ],
        ],
        horizontal_spacing=0.02,
        vertical_spacing=0.08,
    )
    img = np.asarray(image, dtype=float)
    gray = img.mean(0) if img.ndim == 3 else img
    fig.add_trace(go.Heatmap(z=gray, colorscale="gray", showscale=False), row=1, col=1)
    for r, m in enumerate(methods, start=1):
        bound = max(max(float(np.abs(v).max()) for v in maps[m].values()), 1e-12)
        for c, name in enumerate(models, start=2):
            z = maps[m][name]
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    zmin=-bound,
                    zmax=bound,
                    colorscale="RdBu_r",
                    showscale=False,
                    hovertemplate=f"{name}: %{{z:.3g}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
            if zero[m][name]:
                fig.add_annotation(
                    text="all zero",
                    showarrow=False,
                    row=r,
                    col=c,
                    x=z.shape[1] / 2,
                    y=z.shape[0] / 2,
                    font=dict(size=14, color="black"),
                )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=None)
    return fig.update_layout(
        height=230 * len(methods) + 40, margin=dict(t=60, b=10, l=10, r=10), font=dict(size=10)
    )


def html_report(report: dict, figures: dict[str, go.Figure], title: str = "TMU run report") -> str:
    """A standalone HTML page: the figures (plotly.js embedded once), the leaderboard and the raw
    report as JSON."""
    rows = compare_rows(report)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0]) if rows else ""
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in r.values()
        )
        + "</tr>"
        for r in rows
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>dataset {html.escape(str(report['dataset']['name']))}, "
        f"forget {html.escape(str(report['config']['forget']))}, seed "
        f"{report['config']['seed']}</p>",
        f"<table><tr>{head}</tr>{body}</table>",
    ]
    for i, (name, fig) in enumerate(figures.items()):
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(CAPTIONS.get(name, ''))}</p>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append(
        f"<h2>report.json</h2><pre>{html.escape(json.dumps(report, indent=1))}</pre></body></html>"
    )
    return "".join(parts)
