"""Plotly figures of the inspection views (`tmu.inspect`), each against gold: the prediction
matrix, the embedding panels, layer-wise CKA and the membership-inference attack. Pure functions
of arrays; their captions are in `tmu.plots.CAPTIONS`.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots import CLASS_COLORS, FLOOR, GOLD, ORIGINAL, PALETTE, diagonal

AGREE, DISAGREE = "#2ca02c", "#d62728"


def prediction_matrix(
    counts: np.ndarray,
    classes: list[str],
    title: str,
    rows: str = "gold",
    cols: str = "unlearned",
    picked: tuple[int, int] | None = None,
) -> go.Figure:
    """The K x K matrix as markers (clickable, unlike a heatmap; no drag mode is set, so that
    Streamlit's point selection makes a click select): one per non-empty cell at
    (column = `cols`' class, row = `rows`' class), its area proportional to the count, green on
    the diagonal (same class as gold) and red off it; customdata = row * K + col. `picked` is
    ringed."""
    counts = np.asarray(counts)
    k = len(counts)
    r, c = np.nonzero(counts)
    n = counts[r, c]
    size = 10 + 40 * np.sqrt(n / max(n.max(initial=1), 1))
    names = [str(x) for x in classes]
    fig = go.Figure(
        go.Scatter(
            x=c,
            y=r,
            mode="markers+text",
            text=[str(v) for v in n],
            textfont=dict(size=11, color="white"),
            customdata=r * k + c,
            marker=dict(size=size, color=np.where(r == c, AGREE, DISAGREE), opacity=0.85),
            hovertemplate=f"{html.escape(rows)}: %{{y}} → {html.escape(cols)}: %{{x}}"
            "<br>%{text} sample(s)<extra></extra>",
        )
    )
    if picked is not None:
        fig.add_trace(
            go.Scatter(
                x=[picked[1]],
                y=[picked[0]],
                mode="markers",
                hoverinfo="skip",
                marker=dict(size=56, color="rgba(0,0,0,0)", line=dict(width=2, color="black")),
            )
        )
    axis = dict(tickvals=list(range(k)), ticktext=names, range=[-0.7, k - 0.3], zeroline=False)
    return fig.update_layout(
        title=title,
        xaxis=dict(title=f"{cols}'s class", **axis),
        yaxis=dict(title=f"{rows}'s class", **{**axis, "range": [k - 0.3, -0.7]}),  # 0 on top
        height=420,
        showlegend=False,
        margin=dict(t=40, b=40, l=50, r=10),
    )


def embedding_panels(
    panels: list[tuple[str, np.ndarray]],
    groups: np.ndarray,
    names: list[str],
    ids: np.ndarray,
    forget: np.ndarray,
    selected: np.ndarray | None = None,
    colors: list[str] | None = None,
) -> go.Figure:
    """One panel per (title, (n, 2) positions) on shared axes (the positions come from one
    projection, so a point is comparable across panels). `groups` indexes `names` (the colour);
    D_f points (`forget`) are diamonds drawn larger and on top; customdata = pool id. Points whose
    id is in `selected` are ringed in every panel (the linked selection)."""
    colors = colors or CLASS_COLORS
    fig = make_subplots(
        1,
        len(panels),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[t for t, _ in panels],
        horizontal_spacing=0.02,
    )
    ringed = np.isin(ids, selected) if selected is not None and len(selected) else None
    for p, (_, xy) in enumerate(panels):
        for part, symbol, size in ((~forget, "circle", 4), (forget, "diamond", 8)):
            for g, name in enumerate(names):
                m = part & (groups == g)
                if not m.any():
                    continue
                fig.add_trace(
                    go.Scattergl(
                        x=xy[m, 0],
                        y=xy[m, 1],
                        mode="markers",
                        name=str(name),
                        legendgroup=str(name),
                        showlegend=p == 0 and symbol == "circle",
                        customdata=ids[m],
                        marker=dict(
                            size=size,
                            symbol=symbol,
                            color=colors[g % len(colors)],
                            opacity=0.9 if symbol == "diamond" else 0.45,
                            line=dict(width=0.5, color="black") if symbol == "diamond" else None,
                        ),
                        hovertemplate="id %{customdata}<extra>"
                        + html.escape(str(name))
                        + "</extra>",
                    ),
                    1,
                    p + 1,
                )
        if ringed is not None and ringed.any():
            fig.add_trace(
                go.Scattergl(
                    x=xy[ringed, 0],
                    y=xy[ringed, 1],
                    mode="markers",
                    name="selected",
                    showlegend=p == 0,
                    legendgroup="selected",
                    hoverinfo="skip",
                    marker=dict(
                        size=11, color="rgba(0,0,0,0)", line=dict(width=1.5, color="black")
                    ),
                ),
                1,
                p + 1,
            )
    return fig.update_layout(
        height=460,
        dragmode="lasso",
        margin=dict(t=40, b=30, l=30, r=10),
        legend=dict(itemsizing="constant"),
    )


def cka_layers(
    layers: list[str],
    curves: dict[str, np.ndarray],
    floor: np.ndarray | None,
    title: str,
) -> go.Figure:
    """Linear CKA to gold per layer (input side left): one line per model (`original` grey, the
    others from the palette), the gold-vs-gold floor dashed red (1 - ... is the noise: a model at
    the floor is as similar to gold as two gold seeds are to each other)."""
    fig = go.Figure()
    for i, (name, values) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=list(layers),
                y=np.asarray(values, dtype=float),
                mode="lines+markers",
                name=f"{name} vs gold",
                line=dict(color=ORIGINAL if name == "original" else PALETTE[i % len(PALETTE)]),
            )
        )
    if floor is not None:
        fig.add_trace(
            go.Scatter(
                x=list(layers),
                y=np.asarray(floor, dtype=float),
                mode="lines+markers",
                name="gold vs gold (floor)",
                line=dict(color=FLOOR, dash="dash"),
            )
        )
    return fig.update_layout(
        title=title,
        xaxis_title="layer (input → output)",
        yaxis=dict(title="linear CKA", range=[0, 1.02]),
        height=360,
        margin=dict(t=40, b=40, l=50, r=10),
    )


def attack_sweep(
    thresholds: np.ndarray,
    rates: dict[str, np.ndarray],
    tau: float,
    gold_forget: np.ndarray | None,
    title: str,
) -> go.Figure:
    """Member rate (fraction with loss <= threshold) of each data role against the threshold
    (log axis), the calibrated threshold tau as a vertical line, and gold's D_f rate dashed: the
    reference a method should reach, not zero."""
    t = np.asarray(thresholds, dtype=float)
    keep = t > 0
    fig = go.Figure()
    for i, (name, r) in enumerate(rates.items()):
        fig.add_trace(
            go.Scatter(
                x=t[keep],
                y=np.asarray(r)[keep],
                mode="lines",
                name=name,
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    if gold_forget is not None:
        fig.add_trace(
            go.Scatter(
                x=t[keep],
                y=np.asarray(gold_forget)[keep],
                mode="lines",
                name="D_f under gold",
                line=dict(color=GOLD, dash="dash", width=3),
            )
        )
    if tau > 0:
        fig.add_vline(x=tau, line=dict(color="black", dash="dot"), annotation_text="τ")
    return fig.update_layout(
        title=title,
        xaxis=dict(title="loss threshold (member iff loss ≤ threshold)", type="log"),
        yaxis=dict(title="flagged as member", range=[0, 1.02]),
        height=360,
        margin=dict(t=40, b=40, l=50, r=10),
    )


def attack_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> go.Figure:
    """ROC of D_f (positives) against T (negatives) for each (attack, model): a curve on the
    diagonal means D_f looks like unseen data; gold's curves are dashed gold."""
    fig = go.Figure(diagonal())
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        is_gold = name.split(" ")[-1].startswith("gold")
        fig.add_trace(
            go.Scatter(
                x=fpr,
                y=tpr,
                mode="lines",
                name=f"{name} (AUC {auc:.3f})",
                line=dict(
                    color=GOLD if is_gold else PALETTE[i % len(PALETTE)],
                    dash="dash" if is_gold else None,
                ),
            )
        )
    return fig.update_layout(
        title=title,
        xaxis=dict(title="false-positive rate on T", range=[0, 1]),
        yaxis=dict(title="true-positive rate on D_f", range=[0, 1.02]),
        height=360,
        margin=dict(t=40, b=40, l=50, r=10),
    )
