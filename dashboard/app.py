"""TMU Dashboard entry point: `streamlit run dashboard/app.py`. It only routes pages."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # the repo root, for `tmu` and `dashboard`

st.set_page_config(page_title="TMU Dashboard", page_icon=":material/psychology:", layout="wide")
st.navigation(
    [
        st.Page("pages/data.py", title="Data", icon=":material/dataset:", default=True),
        st.Page("pages/forget.py", title="Forget set", icon=":material/content_cut:"),
        st.Page("pages/run.py", title="Run", icon=":material/play_arrow:"),
        st.Page("pages/alignment.py", title="Alignment", icon=":material/track_changes:"),
        st.Page("pages/attributions.py", title="Attributions", icon=":material/search:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/leaderboard:"),
    ]
).run()
