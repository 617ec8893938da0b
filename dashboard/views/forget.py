"""Forget set: random fraction, whole classes, a fraction of one class, point and click
(embedding scatter with box / lasso, thumbnail table with row checkboxes, id-list upload), or
mislabeled images (corrective unlearning: a random fraction trained with wrong labels)."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from dashboard.service.figures import plots
from dashboard.service.runs import cancel_side_job, owns
from tmu.tasks import EMBEDDING, ESTIMATE, HARDNESS

state = ui.setup("Forget set")
dataset, seed = state[Key.DATASET], int(state[Key.SEED])
try:
    info = service.data_info(dataset, seed, float(state[Key.HOLDOUT]))
except ValueError as err:
    st.error(f"Cannot load {service.dataset_label(dataset)!r}: {service.public_message(err)}")
    st.stop()
classes = list(range(len(info.classes)))
name = lambda c: f"{c}: {info.classes[c]}" if info.classes[c] != str(c) else str(c)  # noqa: E731
random_mode, classes_mode, subclass_mode, _, mislabeled_mode = service.FORGET_MODES


def cancel_button(where, job, label: str, kind: str, key: str) -> None:
    """A keyed Cancel button (in `where`: the page or a column) for this tab's side job of `kind`,
    shown while this tab owns `job`."""
    if owns(state, job):
        where.button(label, on_click=cancel_side_job, args=(state, kind), key=key)


def embedding_tab() -> None:
    job, emb = service.embedding(state)
    if emb is None:
        if job.state in ("failed", "cancelled"):
            st.error(f"The embedding job {job.state}: {service.public_text(job.error)}")
            st.button(
                "Retry the embedding",
                on_click=lambda: service.embedding(state, retry=True),
                key=Key.RETRY_BUTTON,
            )
            return

        @st.fragment(run_every=0.5)
        def wait_for_embedding():
            j, e = service.embedding(state)
            st.progress(
                j.fraction,
                text=f"Training / loading the original model to embed the training "
                f"set: {j.stage or 'queued'}",
            )
            if e is not None or j.state in ("failed", "cancelled"):
                st.rerun()

        cancel_button(st, job, "Cancel the embedding", EMBEDDING.name, Key.CANCEL_EMBEDDING_BUTTON)
        wait_for_embedding()
        return

    def on_select():
        n = service.add_ids(state, service.ids_from_selection(state.get(Key.EMBED_CHART)))
        state[Key.SELECTION_MSG] = f"added {n} sample(s) from the chart"

    projections = {"t-SNE": "tsne", "PCA": "xy"} if "tsne" in emb else {"PCA": "xy"}
    run = service.current_run(state)
    lr = service.load(run) if run is not None else None
    c1, c2 = st.columns(2)
    projection = c1.radio(
        "Projection", list(projections), horizontal=True, key=Key.EMBED_PROJECTION
    )
    options = service.color_options(lr, dataset, seed)
    hard_job, hard = service.hardness_map(state)
    if hard is not None:
        options.insert(1, "hardness")
    if state.get(Key.EMBED_COLOR) not in options:
        state[Key.EMBED_COLOR] = "class"
    color = c2.selectbox(
        "Colour by",
        options,
        format_func=service.COLOR_BY.get,
        key=Key.EMBED_COLOR,
        help="**Paint the twin's p(hard)** colours every training sample by how likely a "
        "retrained model gets it wrong, from the twin alone (no gold model).",
    )
    if hard is None:
        busy = hard_job is not None and hard_job.active
        st.button(
            "Paint the twin's p(hard)",
            disabled=busy,
            on_click=lambda: service.hardness_map(state, submit=True),
            key=Key.PAINT_BUTTON,
            help="Train (or load) the original and the twin, then colour the embedding by the "
            "twin predictor's p(hard): the atypical samples a retrained model would miss.",
        )
        if busy:

            @st.fragment(run_every=1.0)
            def wait_for_hardness():
                j, h = service.hardness_map(state)
                st.progress(j.fraction, text=f"Painting p(hard): {j.stage or 'queued'}")
                if h is not None or not j.active:
                    st.rerun()

            cancel_button(
                st, hard_job, "Cancel painting p(hard)", HARDNESS.name, Key.CANCEL_HARDNESS_BUTTON
            )
            wait_for_hardness()
        elif hard_job is not None and hard_job.state in ("failed", "cancelled"):
            st.warning(f"Painting p(hard) {hard_job.state}: {service.public_text(hard_job.error)}")
    xy = emb[projections[projection]]
    if color == "class":
        groups, names, colors = emb["labels"], info.classes, None
    elif color == "hardness":
        groups, names, colors = service.hardness_groups(hard, emb["ids"])
    else:
        groups, names = service.forget_status(lr, emb["ids"], color)
        colors = service.STATUS_COLORS
    fig = plots.embedding_scatter(
        xy, groups, emb["ids"], names, state[Key.SELECTION], projection, colors
    )
    st.plotly_chart(fig, key=Key.EMBED_CHART, on_select=on_select, selection_mode=("box", "lasso"))
    ui.caption("embedding")


def table_tab() -> None:
    c1, c2 = st.columns(2)
    cls = c1.selectbox(
        "Class",
        [None, *classes],
        format_func=lambda c: "all" if c is None else name(c),
        key=Key.THUMB_CLASS,
    )
    page = c2.number_input("Page (50 rows each)", min_value=0, step=1, key=Key.THUMB_PAGE)
    df = service.thumbnail_table(dataset, seed, cls, int(page), holdout=float(state[Key.HOLDOUT]))
    event = st.dataframe(
        df,
        column_config={"image": st.column_config.ImageColumn("image")},
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=f"thumbs.{cls}.{page}",
    )
    rows = event.selection.rows if event else []
    st.button(
        f"Add {len(rows)} ticked row(s) to the forget set",
        disabled=not rows,
        on_click=add_rows,
        args=(df["id"].iloc[rows].tolist(),),
        key=Key.ADD_ROWS_BUTTON,
    )


def add_rows(ids: list[int]) -> None:
    state[Key.SELECTION_MSG] = f"added {service.add_ids(state, ids)} sample(s) from the table"


def add_file() -> None:
    """Button callback: the uploaded id list into the selection, or why it is refused."""
    try:
        n = service.add_ids(state, service.parse_id_list(state[Key.UPLOAD].getvalue()))
        state[Key.SELECTION_MSG] = f"added {n} sample(s) from the file"
    except ValueError as err:
        state[Key.FILE_MSG] = str(err)


def file_tab() -> None:
    upload = st.file_uploader(
        "Upload an id list (one pool id per line, or comma-separated)",
        type=["txt", "csv"],
        key=Key.UPLOAD,
    )
    st.button(
        "Add the uploaded ids", disabled=upload is None, on_click=add_file, key=Key.ADD_FILE_BUTTON
    )
    if error := state.pop(Key.FILE_MSG, None):
        st.error(service.public_text(error))


def estimate_section() -> None:
    """Before any retraining: the twin's estimate of how many samples gold would get wrong."""
    c1, c2 = st.columns([1, 3])
    c1.button(
        "Estimate with the twin",
        help="Train (or load) the original model and the twin problem, without any gold model: "
        "how many of these samples would a retrained model get wrong?",
        on_click=lambda: service.estimate(state, submit=True),
        key=Key.ESTIMATE_BUTTON,
    )
    job, est = service.estimate(state)
    if est is not None:
        c2.info(
            f"The twin estimates that a model retrained without them gets about "
            f"**{est['expected_wrong']:.0f} of these {est['forget']}** wrong "
            f"({est['twin_hard_rate']:.1%}); TMU's predictor would flip "
            f"{est['predicted_hard']}. The Alignment page shows the real figure after a run."
        )
    elif job is not None and job.state in ("failed", "cancelled"):
        c2.error(f"The estimate {job.state}: {service.public_text(job.error)}")
    elif job is not None:

        @st.fragment(run_every=0.5)
        def wait_for_estimate():
            j, e = service.estimate(state)
            st.progress(j.fraction, text=f"Twin estimate: {j.stage or 'queued'}")
            if e is not None or j.state in ("failed", "cancelled"):
                st.rerun()

        with c2:
            wait_for_estimate()
        cancel_button(c1, job, "Cancel the estimate", ESTIMATE.name, Key.CANCEL_ESTIMATE_BUTTON)


def pick_scenario() -> None:
    """Selectbox callback: it runs before any widget is drawn, so it may set them all."""
    service.apply_scenario(state, state[Key.SCENARIO])
    service.clear_selection(state)


s1, s2 = st.columns([1, 2])
s1.selectbox(
    "Scenario",
    service.scenario_names(),
    key=Key.SCENARIO,
    on_change=pick_scenario,
    help="A named request in a regime: dataset, recipe, label noise, forget set and methods "
    "in one click (the same as `python -m tmu run --scenario NAME`).",
)
scenario = service.current_scenario(state)
if scenario:
    s2.info(f"**{scenario}**: {service.scenario_summary(scenario)}")
else:
    s2.caption(
        f"Settings changed since the scenario {state[Key.SCENARIO]!r}: pick it again to restore "
        "it, or go on with your own."
    )
st.radio("Build D_f by", service.FORGET_MODES, key=Key.FORGET_MODE, horizontal=True)
mode = state[Key.FORGET_MODE]
if mode == random_mode:
    st.slider("Fraction of the training set D", 0.01, 0.9, step=0.01, key=Key.RANDOM_FRACTION)
elif mode == classes_mode:
    st.multiselect("Classes to forget", classes, format_func=name, key=Key.CLASSES)
elif mode == subclass_mode:
    c1, c2 = st.columns(2)
    c1.selectbox("Class", classes, format_func=name, key=Key.SUB_CLASS)
    c2.slider("Fraction of that class", 0.01, 0.99, step=0.01, key=Key.SUB_FRACTION)
elif mode == mislabeled_mode:
    st.slider(
        "Fraction of the training set D given a wrong label",
        0.01,
        0.5,
        step=0.01,
        key=Key.MISLABELED_FRACTION,
    )
    st.info(
        "Corrective unlearning: these samples carry a wrong label (uniform over the other "
        "classes) before any model trains, as if annotators had slipped. The original memorises "
        "the wrong labels; a model retrained without them (gold) predicts the true class for "
        "most. Unlearning should move the model there, not merely away from the wrong label."
    )
else:
    for tab, draw in zip(
        st.tabs(["Embedding", "Thumbnail table", "Upload / download"]),
        (embedding_tab, table_tab, file_tab),
    ):
        with tab:
            draw()
    if state[Key.SELECTION]:
        st.button(
            "Clear the selection",
            on_click=service.clear_selection,
            args=(state,),
            key=Key.CLEAR_BUTTON,
        )
    if state.get(Key.SELECTION_MSG):
        st.toast(state.pop(Key.SELECTION_MSG))

check = service.check_forget(state)
st.subheader("Current forget set")
if check.error:
    st.error(f"Invalid forget set: {service.public_text(check.error)}")
else:
    st.success(f"D_f has {len(check.ids)} samples ({ui.short(check.spec, 80)})")
    if check.warning:
        st.warning(check.warning)
    estimate_section()
    st.dataframe(
        {"class": list(check.per_class), "samples": list(check.per_class.values())},
        hide_index=False,
    )
    captions = service.forget_captions(check, dataset, 16)
    st.image(service.images(dataset, check.ids[:16]), width=56, caption=captions)
    st.download_button(
        "Download the id list",
        service.id_list_text(check.ids),
        file_name="forget_ids.txt",
        mime="text/plain",
    )
    if mode == service.POINT_AND_CLICK:
        spread = service.selection_spread(state, check.ids)
        if spread is not None and spread < service.CLUSTERED:
            st.warning(
                f"This selection is clustered: within its classes it spreads {spread:.2f}× as wide "
                "as a random pick in the embedding. TMU's twin set is drawn at random within the "
                "same classes, so its predictor may transfer less reliably to this request."
            )
        st.caption(
            "A hand-picked D_f need not be distributed like the holdout set: TMU's twin set is "
            "drawn to match its class histogram only."
        )
st.page_link(ui.RUN_PAGE, label="Next: Run", icon=":material/play_arrow:")
