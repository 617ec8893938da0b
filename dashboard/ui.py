"""Streamlit pieces shared by the pages: state set-up, the sidebar (settings summary and the
current forget selection, visible on every page), the "no run yet" message and the run picker."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import service
from dashboard.service import Key

RUN_PAGE = "views/run.py"
ALIGNMENT_PAGE = "views/alignment.py"


def setup(title: str):
    """Initialise and keep the settings (widget keys are dropped by Streamlit on pages that don't
    draw them, so they are re-assigned here), draw the sidebar; returns the session state."""
    state = st.session_state
    service.init_state(state)
    for key in [k for k in state.keys() if str(k).startswith(Key.WIDGET_PREFIX)]:
        state[key] = state[key]
    sidebar(state)
    st.title(title)
    error = service.backend_error()
    if error:
        st.error(
            f"The job backend is unavailable: {service.public_text(error)}  \nStart the cluster "
            "as the README's “Running on a GPU server or cluster” says, or unset TMU_BACKEND to "
            "run on this machine; this page tries again on your next click."
        )
        st.stop()
    return state


def sidebar(state) -> None:
    with st.sidebar:
        st.toggle(
            "quick demo (fewer epochs)",
            key=Key.QUICK,
            help="2 training epochs instead of 20: for live demos on a slow machine",
        )
        check = service.check_forget(state)
        scenario = service.current_scenario(state)
        if scenario:
            st.markdown(f"**Scenario** {scenario}")
        st.markdown(
            f"**Dataset** {service.dataset_label(state[Key.DATASET])} · seed {state[Key.SEED]}"
        )
        regime = [
            f"recipe {state[Key.RECIPE]}" if state[Key.RECIPE] != "standard" else "",
            f"label noise {state[Key.LABEL_NOISE]:.0%}" if state[Key.LABEL_NOISE] else "",
            f"holdout {state[Key.HOLDOUT]:.0%}" if state[Key.HOLDOUT] != 0.2 else "",
        ]
        if any(regime):
            st.markdown("**Regime** " + " · ".join(r for r in regime if r))
        if service.weights_in_use(state):
            st.markdown(f"**Original model** your weights `{state[Key.WEIGHTS_NAME]}`")
        if check.spec:
            st.markdown(f"**Forget set** `{short(check.spec, 60)}`")
        if check.error:
            st.warning(service.public_text(check.error))
            return
        st.markdown(
            f"{len(check.ids)} samples: "
            + ", ".join(f"{c}: {n}" for c, n in check.per_class.items())
        )
        shown = check.ids[:6]
        if len(shown):
            st.image(service.images(state[Key.DATASET], shown), width=40)


def need_run(what: str = "this page") -> None:
    """The "no run yet" state: say so, and link to the Run page."""
    st.info(
        f"No finished run yet: {what} shows the results of a run. Start one on the Run page "
        "(with no change it runs the default demo)."
    )
    st.page_link(RUN_PAGE, label="Go to Run", icon=":material/play_arrow:")


def run_picker(state) -> Path | None:
    """Choose among finished runs (newest first, from disk); None when there is none."""
    runs = service.finished_runs(state=state)
    if not runs:
        need_run()
        return None
    current = service.current_run(state)
    index = runs.index(current) if current in runs else 0
    path = st.selectbox("Run", runs, index=index, format_func=service.run_label, key=Key.RUN_PICKER)
    state[Key.RUN_PATH] = str(path)
    return path


def method_picker(lr, key: str) -> str:
    methods = service.result_methods(lr)
    return st.selectbox("Unlearning method", methods, index=0, key=key)


def short(text: str, n: int) -> str:
    """`text` cut to `n` characters with an ellipsis."""
    return text if len(text) <= n else text[:n] + "…"


def caption(name: str) -> None:
    from tmu.plots import CAPTIONS

    st.caption(CAPTIONS[name])
