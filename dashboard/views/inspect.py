"""Inspect: a finished run looked at from the class, sample and layer level, every view against
gold: the prediction matrix (click a cell for its samples), the embeddings of original,
unlearned and gold on one projection (linked selection), layer-wise CKA to gold, and the
membership-inference attack with the samples most at risk."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from dashboard.service.figures import plots_inspect as pi

state = ui.setup("Inspect")
path = ui.run_picker(state)
if path is None:
    st.stop()
lr = service.load(path)
method = ui.method_picker(lr, Key.INSPECT_METHOD)
ins = service.inspection(path)
classes = tuple(str(c) for c in lr.report["dataset"]["classes"])  # by value: memoised figures
dataset = lr.config.dataset


def thumbnails(ids, caption) -> None:
    ids = list(ids)[:40]
    if ids:
        st.image(service.images(dataset, ids), width=56, caption=[caption(i) for i in ids])


def matrix_tab() -> None:
    c1, _ = st.columns([1, 3])
    options = [None, *range(len(classes))]
    cls = c1.selectbox(
        "Samples",
        options,
        format_func=lambda c: "all of D_f" if c is None else f"D_f of class {classes[c]}",
        key=Key.MATRIX_CLASS,
    )
    mine, original = service.matrices(lr, method, cls)
    # The click's event is in the chart's state when this rerun starts: ring it on this draw.
    cell = service.cell_from_selection(state.get(Key.MATRIX_CHART), len(classes))
    if cell is not None:
        state[Key.MATRIX_CELL] = cell
    picked = state.get(Key.MATRIX_CELL)
    if picked is not None and not mine.counts[tuple(picked)]:
        picked = None  # another method or class: that cell is empty now
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            pi.prediction_matrix(
                mine.counts, classes, f"{method} vs gold", cols=method, picked=picked
            ),
            key=Key.MATRIX_CHART,
            on_select="rerun",
            selection_mode="points",
        )
    with right:
        st.plotly_chart(
            pi.prediction_matrix(original.counts, classes, "original vs gold", cols="original"),
            key="matrix.original",
        )
    ui.caption("prediction_matrix")
    if picked is not None:
        r, c = picked
        ids = mine.cell(r, c)
        st.markdown(
            f"**{len(ids)} sample(s)** gold puts in class {classes[r]} and {method} in class "
            f"{classes[c]}" + (" (showing 40)" if len(ids) > 40 else "")
        )
        y = lr.dataset.tensors[1].numpy()
        thumbnails(ids, lambda i: f"{i}: label {classes[y[i]]}")
    else:
        st.caption("Click a marker to see its samples.")


def embedding_tab() -> None:
    color = st.radio(
        "Colour by",
        list(service.EMBED_COLORS),
        format_func=service.EMBED_COLORS.get,
        horizontal=True,
        key=Key.INSPECT_EMBED_COLOR,
    )
    view = service.embedding_view(ins, method, color, classes)
    # A box or lasso's event is in the chart's state when this rerun starts: ring it now.
    picked = sorted(set(service.ids_from_selection(state.get(Key.INSPECT_EMBED_CHART))))
    if picked:
        state[Key.INSPECT_SELECTION] = picked
    selected = state.get(Key.INSPECT_SELECTION, [])
    st.plotly_chart(
        pi.embedding_panels(
            view.panels, view.groups, view.names, view.ids, view.forget, selected, view.colors
        ),
        key=Key.INSPECT_EMBED_CHART,
        on_select="rerun",
        selection_mode=("box", "lasso"),
    )
    ui.caption("embedding_panels")
    if selected:
        st.markdown(f"**{len(selected)} selected** (ringed in every panel)")
        thumbnails(selected, str)
    r2 = ins.embedding.fit_r2
    st.caption(
        "How well each model's features map onto the original's (R² on test points the map "
        "was not fitted on): "
        + ", ".join(f"{m} {v:.2f}" for m, v in zip(ins.embedding.models, r2) if m != "original")
    )


def cka_tab() -> None:
    for which, label in (("forget", "on D_f"), ("test", "on T")):
        layers, curves, floor = service.cka_view(ins, method, which)
        st.plotly_chart(
            pi.cka_layers(layers, curves, floor, f"Similarity to gold, layer by layer, {label}"),
            key=f"cka.{which}",
        )
    ui.caption("cka")


def attack_tab() -> None:
    a = service.attack_curves(ins, method)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            pi.attack_sweep(
                a["thresholds"],
                a["rates"],
                a["tau"],
                a["gold_forget"],
                f"Loss-threshold attack on {method}",
            ),
            key="attack.sweep",
        )
    with right:
        st.plotly_chart(pi.attack_roc(a["roc"], "D_f against T"), key="attack.roc")
    ui.caption("attack")
    st.dataframe(
        service.attack_table(ins, method),
        hide_index=True,
        column_config={
            k: st.column_config.NumberColumn(format="%.3f")
            for k in ("AUC D_f vs T", "D_f flagged", "easy flagged", "hard flagged")
        },
    )
    st.caption(f"{a['easy_rule']}; LiRA flags at most {ins.attacks.alpha:.0%} of T.")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown(f"**Most at risk under {method}**")
        thumbnails(a["riskiest"], str)
    with c2:
        st.markdown(f"**Most at risk under {a['gold']}** (the reference)")
        thumbnails(a["riskiest_gold"], str)


if ins is None:
    st.info(
        "This run was made before the inspection views existed: run it again (Run page) to "
        "compute them."
    )
    matrix_tab()
    st.stop()

# Lazy tabs: only the open one runs and is sent (four tabs of charts at once took the render of
# an mnist5k run over a second).
VIEWS = {
    "Prediction matrix": matrix_tab,
    "Embeddings": embedding_tab,
    "Layers (CKA)": cka_tab,
    "Attack": attack_tab,
}
for tab, draw in zip(st.tabs(list(VIEWS), key=Key.INSPECT_TAB, on_change="rerun"), VIEWS.values()):
    if tab.open:
        with tab:
            draw()
