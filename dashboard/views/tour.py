"""Tour: one run's story in seven steps, every number from its run record, with at most five
controls (scenario, forget set, seed, method to contrast, Run) and a link that reproduces the
page (its state lives in the URL's query string)."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key

state = ui.setup("Tour")
TOUR = service.tour


def apply_link() -> None:
    """Follow the URL's query parameters when they changed since this tab last read or wrote
    them (a link just opened, the browser's back button)."""
    params = {k: st.query_params[k] for k in st.query_params}
    if params == state.get(Key.TOUR_LINK):
        return
    state[Key.TOUR_LINK] = params
    try:
        req = TOUR.parse_link(params)
    except TOUR.LinkError as err:
        why = service.public_message(err)
        st.error(f"This link cannot be followed: {why}. Showing the default tour instead.")
        req = TOUR.TourRequest()
    state[Key.TOUR_SCENARIO], state[Key.TOUR_SEED] = req.scenario, req.seed
    state[Key.TOUR_FORGET] = req.forget or service.get_scenario(req.scenario).forget
    state[Key.TOUR_METHOD], state[Key.TOUR_RUN] = req.method, req.run


def new_scenario() -> None:
    state[Key.TOUR_FORGET] = service.get_scenario(state[Key.TOUR_SCENARIO]).forget
    state[Key.TOUR_RUN] = None


def request() -> "TOUR.TourRequest":
    return TOUR.TourRequest(
        state[Key.TOUR_SCENARIO],
        state[Key.TOUR_FORGET],
        int(state[Key.TOUR_SEED]),
        state[Key.TOUR_METHOD],
        state.get(Key.TOUR_RUN),
    )


def submit() -> None:
    """Run button callback: queue this lesson's run (shared with anyone asking the same)."""
    job_id, error = service.submit_config(state, TOUR.tour_config(request(), state[Key.QUICK]))
    state[Key.TOUR_JOB], state[Key.RUN_MSG] = job_id, error


apply_link()
c1, c2, c3, c4 = st.columns([3, 3, 1, 2])
c1.selectbox("Scenario", service.scenario_names(), key=Key.TOUR_SCENARIO, on_change=new_scenario)
c2.selectbox(
    "Forget set",
    TOUR.forget_choices(state[Key.TOUR_SCENARIO]),
    key=Key.TOUR_FORGET,
    on_change=lambda: state.update({Key.TOUR_RUN: None}),
)
c3.number_input(
    "Seed",
    0,
    TOUR.MAX_SEED,
    step=1,
    key=Key.TOUR_SEED,
    on_change=lambda: state.update({Key.TOUR_RUN: None}),
)
c4.selectbox("Contrast TMU with", service.contrast_methods(), key=Key.TOUR_METHOD)
req = request()
link = TOUR.link_of(req)
st.query_params.from_dict(link)
state[Key.TOUR_LINK] = link
st.caption("Send this page: its address holds the scenario, forget set, seed and method.")

path = service.tour_run(state, req)
if path is None:
    if req.run:
        st.warning(f"No finished run with the id {req.run!r} on this server.")
    st.info(
        f"This lesson's run (scenario **{req.scenario}**, `{state[Key.TOUR_FORGET]}`, seed "
        f"{req.seed}) is not stored yet: run it here (a teacher can prepare it before class with "
        f"`python -m tmu prepare --scenario {req.scenario} --seeds {req.seed}`)."
    )
    st.button(
        "Run", type="primary", on_click=submit, disabled=bool(req.run), key=Key.TOUR_RUN_BUTTON
    )
    if msg := state.pop(Key.RUN_MSG, None):
        st.error(service.public_text(msg))
    job = service.job_status(state.get(Key.TOUR_JOB))
    if job is not None and job.active:

        @st.fragment(run_every=1.0)
        def wait() -> None:
            j = service.job_status(state.get(Key.TOUR_JOB))
            st.progress(min(max(j.fraction, 0.0), 1.0), text=f"{j.state}: {j.stage or 'queued'}")
            if not j.active:
                st.rerun()

        wait()
    elif job is not None and job.state != "done":
        st.error(f"The run {job.state}: {service.public_text(job.error)}")
    st.stop()

lr = service.load(path)
report = lr.report
contrast = req.method if req.method in report["models"] else "finetune"
if contrast not in report["models"]:
    contrast = next(m for m in report["methods"] if not m.startswith("tmu"))
steps = TOUR.tour_steps(report, contrast, TOUR.scenario_of(lr.config))
figures = service.tour_figures(lr, contrast)
for step in steps:
    st.subheader(step.title)
    if step.missing:
        st.info(f"This run cannot show this step: {step.missing}.")
        continue
    st.markdown(step.text)
    for i, (kind, item) in enumerate(figures.get(step.title[0], [])):
        if kind == "chart":
            st.plotly_chart(item, key=f"tour.{step.title[0]}.{i}")
        elif kind == "images":
            st.image(item[0], width=48, caption=item[1])
st.page_link(ui.ALIGNMENT_PAGE, label="Every figure of this run", icon=":material/track_changes:")
