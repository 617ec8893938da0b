"""Alignment: the forget set at a glance (accuracy, agreement, true-label accuracy), per-class
accuracy vs gold (with the seed band), the gaps to gold against the noise
floor, the 2×2 alignment table with misaligned thumbnails, the predictor view and MIA."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from dashboard.service.figures import plots

state = ui.setup("Alignment")
path = ui.run_picker(state)
if path is None:
    st.stop()
lr = service.load(path)
report = lr.report
method = ui.method_picker(lr, Key.ALIGN_METHOD)

st.plotly_chart(plots.forget_headline(report), key="headline")
ui.caption("headline")

st.subheader("Per-class accuracy: unlearned vs gold vs original")
for tab, which in zip(st.tabs(["forget", "retain", "test"]), ("forget", "retain", "test")):
    with tab:
        st.plotly_chart(plots.per_class_accuracy(report, which), key=f"per_class.{which}")
ui.caption("per_class")

st.subheader("Gaps to gold")
vs, floor = report["models"][method]["vs_gold"], report.get("noise_floor") or {}
cols = st.columns(4)
for col, (k, label) in zip(
    cols,
    [
        ("delta_forget", "Δ_f"),
        ("per_class_delta_forget", "per-class Δ"),
        ("agreement_forget", "agreement"),
        ("activation_distance_forget", "activation dist."),
    ],
):
    col.metric(
        label,
        f"{vs[k]:.3f}",
        help=f"gold-vs-gold noise floor: {floor.get(k, float('nan')):.3f}"
        if floor
        else "one gold seed: no noise floor",
    )
st.plotly_chart(plots.gaps_to_gold(report, method), key="gaps")
ui.caption("gaps")

st.subheader("Alignment table")
c1, c2 = st.columns([2, 3])
quads = service.quadrant_ids(lr, method)
with c1:
    st.plotly_chart(
        plots.quadrant_table(service.quadrant_fractions(quads), len(lr.split["forget"])),
        key="quadrants",
    )
    ui.caption("quadrants")
    st.caption(
        "Against the gold ensemble: its class for a sample is the argmax of the softmax averaged "
        "over the gold seeds (the metrics above average over the seeds instead)."
    )
with c2:
    for q in ("over_forgotten", "under_forgotten"):
        ids = quads[q]
        st.markdown(
            f"**{q.replace('_', '-')}**: {len(ids)} sample(s)"
            + (
                " (gold right, unlearned wrong)"
                if q == "over_forgotten"
                else " (gold wrong, unlearned right)"
            )
        )
        if len(ids):
            st.image(
                service.images(lr.config.dataset, ids[:12]),
                width=48,
                caption=[str(i) for i in ids[:12]],
            )

st.subheader("Predictor view")
arrays = service.predictor_arrays(lr)
if arrays is None:
    st.info("This run has no hardness predictor (it is fitted only for TMU).")
else:
    st.plotly_chart(plots.predictor_view(**arrays), key="predictor")
    ui.caption("predictor")
    if report.get("predictor"):
        p, twin = report["predictor"], report.get("twin", {})
        n_f = report["dataset"]["sizes"]["forget"]
        c1, c2, c3 = st.columns(3)
        c1.metric(
            "Twin's estimate: gold gets wrong",
            f"{(1 - twin.get('easy_rate', float('nan'))) * n_f:.0f} of {n_f}",
            help="Before any retraining: the twin problem's hard rate times |D_f|.",
        )
        c2.metric("Predicted hard (flipped)", f"{p['predicted_hard']}")
        c3.metric(
            "Gold gets wrong (after the run)",
            f"{p['true_hard']:g}",
            help="Mean over the gold seeds; evaluation only, never seen by TMU.",
        )
        auroc = "n/a" if p.get("auroc") is None else f"{p['auroc']:.2f}"
        st.caption(
            f"Predictor on the forget set: accuracy {p['accuracy']:.2f}, balanced accuracy "
            f"{p['balanced_accuracy']:.2f}, AUROC {auroc} (0.5 = chance) against gold."
        )

fit = report.get("twin", {}).get("fit")
if fit:
    st.subheader("Does the twin mirror the original?")
    c1, c2, c3 = st.columns(3)
    c1.metric("Original fits D", f"{fit['original_train']:.3f}")
    c2.metric("Original fits D_f", f"{fit['original_forget']:.3f}")
    c3.metric(
        "Twin model fits H_f",
        f"{fit['twin_forget']:.3f}",
        help=f"Target {fit['target']:.3f}: the original's fit on the samples H_f mirrors.",
    )
    how = (
        f"retrained from scratch on D ∪ H_f with the original's recipe ({fit['epochs']} epochs)"
        if fit["mode"] == "retrain"
        else f"the original fine-tuned on H_f for {fit['epochs']} epoch(s)"
    )
    st.caption(
        f"The twin model is {how}. H_f must be members of the twin model the way D_f are members "
        "of the original, or twin-tuning learns from a problem unlike the real one."
    )
flips = report["models"][method].get("flips")
if flips:
    st.markdown(
        f"**{method}'s flips**: {flips['flips']} forget sample(s) trained towards another label; "
        f"{flips['moved']} no longer get their given label, {flips['landed']} get the flip label"
        + (
            f", and {flips['on_gold']} flip label(s) are the gold ensemble's own class"
            if "on_gold" in flips
            else ""
        )
        + "."
    )

st.subheader("Where the gap lives")
mem, dist, member = service.gap_views(lr, (method,))
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(plots.gap_bins(mem), key="gap.memorisation")
    ui.caption("gap_memorisation")
with c2:
    if dist is None:
        st.info("This run was stored before the distance view existed.")
    else:
        st.plotly_chart(plots.gap_bins(dist), key="gap.distance")
        ui.caption("gap_distance")

st.subheader("Membership inference")
st.plotly_chart(plots.membership_two_sided(member), key="mia.two_sided")
ui.caption("membership_two_sided")
st.plotly_chart(plots.mia_figure(report), key="mia")
ui.caption("mia")
