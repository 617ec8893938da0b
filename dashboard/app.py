"""TMU Dashboard entry point: `streamlit run dashboard/app.py`. It only routes pages.

With `TMU_RENDER_LOG=1` each page's script time, each websocket session and each submitted job
are logged to the server's log (`dashboard.telemetry`): scripts/load_visitors.py reads it."""

import sys
import time
from pathlib import Path

import streamlit as st

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # the repo root, for `tmu` and `dashboard`

from dashboard import telemetry  # noqa: E402

st.set_page_config(page_title="TMU Dashboard", page_icon=":material/psychology:", layout="wide")
page = st.navigation(
    [
        st.Page("views/data.py", title="Data", icon=":material/dataset:", default=True),
        st.Page("views/tour.py", title="Tour", icon=":material/school:"),
        st.Page("views/forget.py", title="Forget set", icon=":material/content_cut:"),
        st.Page("views/run.py", title="Run", icon=":material/play_arrow:"),
        st.Page("views/alignment.py", title="Alignment", icon=":material/track_changes:"),
        st.Page("views/inspect.py", title="Inspect", icon=":material/biotech:"),
        st.Page("views/attributions.py", title="Attributions", icon=":material/search:"),
        st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:"),
    ]
)
if telemetry.enabled():
    telemetry.install()
start, cpu = time.perf_counter(), time.thread_time()
try:
    page.run()
finally:  # st.stop and st.rerun end a script by raising: they are timed too
    if telemetry.enabled():
        telemetry.render(page.title, time.perf_counter() - start, time.thread_time() - cpu)
