"""Attributions: captum maps of chosen forget samples under original, gold and unlearned."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key

state = ui.setup("Attributions")
path = ui.run_picker(state)
if path is None:
    st.stop()
lr = service.load(path)
method = ui.method_picker(lr, Key.ATTR_METHOD)
forget = [int(i) for i in lr.split["forget"]]
disagree = [int(i) for i in service.disagreement_ids(lr, method)]
if disagree:
    st.caption(
        f"{len(disagree)} forget sample(s) where {method} and the gold ensemble disagree; "
        "the first ones are picked."
    )
else:
    st.caption(
        f"{method} agrees with the gold ensemble on every forget sample; the first ones are picked."
    )
ids = st.multiselect(
    "Forget samples",
    forget,
    default=(disagree or forget)[:3],
    max_selections=8,
    key=f"{Key.ATTR_IDS}.{path.name}.{method}",
)
if not ids:
    st.info("Pick at least one forget sample.")
    st.stop()
exp = service.explain_samples(path, method, ids)
ui.caption("attributions")
for n, i in enumerate(exp.ids):
    st.markdown(
        f"**Sample {int(i)}**, true class {lr.report['dataset']['classes'][int(exp.target[n])]}"
    )
    fig, zeros = service.attribution_view(lr, exp, n)
    st.plotly_chart(fig, key=f"attr.{int(i)}")
    if zeros:
        st.caption("All-zero maps (no pixel moves the logit): " + ", ".join(zeros))
