"""Compare: every method of a run in one sortable table, a bar chart against the noise floor,
and the run exported as JSON, CSV and a standalone HTML report."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from dashboard.service.figures import plots

state = ui.setup("Compare")
path = ui.run_picker(state)
if path is None:
    st.stop()
report = service.load(path).report
st.dataframe(service.compare_table(report), hide_index=True, key="leaderboard")
st.caption(
    "Click a column header to sort. Δ_f and per-class Δ: lower is closer to gold; "
    "agreement: higher."
)
metric = st.selectbox(
    "Metric", list(plots.GAP_METRICS), format_func=plots.GAP_METRICS.get, key=Key.COMPARE_METRIC
)
st.plotly_chart(plots.compare_bars(report, metric), key="compare")
ui.caption("compare")

c1, c2, c3 = st.columns(3)
c1.download_button(
    "Export JSON",
    lambda: service.export_json(report),
    file_name="report.json",
    mime="application/json",
)
c2.download_button(
    "Export CSV", lambda: service.export_csv(report), file_name="methods.csv", mime="text/csv"
)
c3.download_button(
    "Export HTML report",
    lambda: service.export_html(report),
    file_name="report.html",
    mime="text/html",
)
