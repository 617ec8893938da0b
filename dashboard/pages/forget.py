"""Forget set: random fraction, whole classes, a fraction of one class, or point and click
(embedding scatter with box / lasso, thumbnail table with row checkboxes, id-list upload)."""
import streamlit as st

from dashboard import service, ui
from tmu import plots

state = ui.setup("Forget set")
try:
    info = service.data_info(state["w.dataset"], int(state["w.seed"]))
except ValueError as err:
    st.error(f"Cannot load {state['w.dataset']!r}: {err}")
    st.stop()
classes = list(range(len(info.classes)))
name = lambda c: f"{c}: {info.classes[c]}" if info.classes[c] != str(c) else str(c)  # noqa: E731

st.radio("Build D_f by", service.FORGET_MODES, key="w.forget_mode", horizontal=True)
mode = state["w.forget_mode"]
if mode == "random fraction":
    st.slider("Fraction of the training set D", 0.01, 0.9, step=0.01, key="w.random_fraction")
elif mode == "whole classes":
    st.multiselect("Classes to forget", classes, format_func=name, key="w.classes")
elif mode == "fraction of one class":
    c1, c2 = st.columns(2)
    c1.selectbox("Class", classes, format_func=name, key="w.sub_class")
    c2.slider("Fraction of that class", 0.01, 1.0, step=0.01, key="w.sub_fraction")
else:
    emb_tab, table_tab, file_tab = st.tabs(["Embedding", "Thumbnail table", "Upload / download"])
    with emb_tab:
        job, emb = service.embedding(state)
        if emb is None:
            if job.state in ("failed", "cancelled"):
                st.error(f"The embedding job {job.state}: {job.error}")
            else:
                @st.fragment(run_every=0.5)
                def wait_for_embedding():
                    j, e = service.embedding(state)
                    st.progress(j.fraction, text=f"Training / loading the original model to embed the training "
                                                  f"set: {j.stage or 'queued'}")
                    if e is not None:
                        st.rerun()
                wait_for_embedding()
        else:
            def on_select():
                n = service.add_ids(state, service.ids_from_selection(state.get("embed")))
                state["sel.msg"] = f"added {n} sample(s) from the chart"
            fig = plots.embedding_scatter(emb["xy"], emb["labels"], emb["ids"], info.classes, state["sel.ids"])
            st.plotly_chart(fig, key="embed", on_select=on_select, selection_mode=("box", "lasso"))
            ui.caption("embedding")
    with table_tab:
        c1, c2 = st.columns(2)
        cls = c1.selectbox("Class", [None, *classes], format_func=lambda c: "all" if c is None else name(c),
                           key="thumb.class")
        page = c2.number_input("Page (50 rows each)", min_value=0, step=1, key="thumb.page")
        df = service.thumbnail_table(state["w.dataset"], int(state["w.seed"]), cls, int(page))
        event = st.dataframe(df, column_config={"image": st.column_config.ImageColumn("image")}, hide_index=True,
                             on_select="rerun", selection_mode="multi-row", key=f"thumbs.{cls}.{page}")
        rows = event.selection.rows if event else []
        if st.button(f"Add {len(rows)} ticked row(s) to the forget set", disabled=not rows):
            state["sel.msg"] = f"added {service.add_ids(state, df['id'].iloc[rows])} sample(s) from the table"
    with file_tab:
        upload = st.file_uploader("Upload an id list (one pool id per line, or comma-separated)",
                                  type=["txt", "csv"], key="upload")
        if upload is not None and st.button("Add the uploaded ids"):
            try:
                state["sel.msg"] = f"added {service.add_ids(state, service.parse_id_list(upload.getvalue().decode()))}" \
                                   " sample(s) from the file"
            except ValueError as err:
                st.error(str(err))
    if state["sel.ids"] and st.button("Clear the selection"):
        state["sel.ids"] = []
    if state.get("sel.msg"):
        st.toast(state.pop("sel.msg"))

check = service.check_forget(state)
st.subheader("Current forget set")
if check.error:
    st.error(f"Invalid forget set: {check.error}")
else:
    st.success(f"D_f has {len(check.ids)} samples ({check.spec[:80]}{'…' if len(check.spec) > 80 else ''})")
    if check.warning:
        st.warning(check.warning)
    st.dataframe({"class": list(check.per_class), "samples": list(check.per_class.values())}, hide_index=False)
    st.image(service.images(state["w.dataset"], check.ids[:16]), width=56,
             caption=[str(i) for i in check.ids[:16]])
    st.download_button("Download the id list", service.id_list_text(check.ids), file_name="forget_ids.txt",
                       mime="text/plain")
    if mode == "point and click":
        spread = service.selection_spread(state, check.ids)
        if spread is not None and spread < service.CLUSTERED:
            st.warning(f"This selection is clustered: within its classes it spreads {spread:.2f}× as wide as "
                       "a random pick in the embedding. TMU's twin set is drawn at random within the same "
                       "classes, so its predictor may transfer less reliably to this request.")
        st.caption("A hand-picked D_f need not be distributed like the holdout set: TMU's twin set is drawn "
                   "to match its class histogram only.")
st.page_link(ui.RUN_PAGE, label="Next: Run", icon=":material/play_arrow:")
