"""Run: methods, gold seeds, seed, device; the Run button submits a job to the backend and the
page follows its per-stage progress live until it says Done."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key

state = ui.setup("Run")
descriptions = service.methods()
st.multiselect(
    "Methods (TMU, plus optional baselines)",
    list(descriptions),
    key=Key.METHODS,
    help="\n".join(f"* **{m}**: {d}" for m, d in descriptions.items()),
)
st.checkbox(
    "Also run TMU with the rate rule (tmu+rate)",
    key=Key.RATE_RULE,
    help="TMU flips where the twin says a flip raises agreement with gold (the gain rule, "
    "`tmu`); the rate rule flips as many samples as the twin says gold gets wrong (the paper's "
    "choice: the lowest accuracy gap, often less agreement). Both side by side.",
)
c1, c2, c3 = st.columns(3)
c1.number_input(
    "Gold seeds (retrained models)", min_value=1, max_value=10, step=1, key=Key.GOLD_SEEDS
)
c2.number_input("Seed", min_value=0, max_value=10_000, step=1, key=Key.SEED)
info = service.backend_info()
devices = service.device_options(info)
if state[Key.DEVICE] not in devices:
    state[Key.DEVICE] = "auto"
c3.selectbox("Device", list(devices), format_func=devices.get, key=Key.DEVICE)


def where(info: dict) -> str:
    """One line on where jobs run: this machine's device, or the Ray cluster and its GPUs."""
    if info.get("error"):
        return f"**Backend** {info['backend']}: not answering ({info['error']})"
    if info["backend"] != "ray":
        return f"**Backend** this machine ({info['device']})"
    workers = info.get("workers", [])
    gpus = [g for w in workers for g in w.get("gpus", [])]
    names = sorted({g["name"] for g in gpus})
    memory = sum(g["memory_used"] for g in gpus) / 2**30
    busy = sum(bool(w.get("busy")) for w in workers)
    return (
        f"**Backend** Ray cluster at `{info['address']}` · {info['nodes']} node(s) · "
        f"GPUs {info['gpus_in_use']:g} of {info['gpus']:g} allocated"
        + (f" ({', '.join(names)}; {memory:.1f} GiB held by tmu workers)" if names else "")
        + f" · {len(workers)} tmu worker(s), {busy} busy"
    )


st.markdown(where(info))
if info.get("error"):
    st.warning("The cluster does not answer: jobs cannot run until it is back.")
check = service.check_forget(state)
dataset = service.dataset_label(state[Key.DATASET])
st.markdown(
    f"**Dataset** {dataset} ({state[Key.MODEL]}) · **forget set** "
    f"`{ui.short(check.spec, 80)}` "
    + ("" if check.error else f"({len(check.ids)} samples)")
    + (" · quick profile" if state[Key.QUICK] else "")
)
if check.error:
    st.warning(f"The forget set is invalid: {service.public_text(check.error)}")


def submit() -> None:
    """Run button callback: it runs before the next rerun, so no click is lost."""
    _, state[Key.RUN_MSG] = service.submit_run(state)


st.button("Run", type="primary", on_click=submit, key=Key.RUN_BUTTON)
if error := state.pop(Key.RUN_MSG, None):
    st.error(service.public_text(error))


def show(job) -> None:
    stages = job.stages
    done = {s for i, s in enumerate(stages) if job.fraction * len(stages) >= i + 1 - 1e-9}
    text = f"{job.state}: {job.stage or 'waiting for the worker'} ({job.stage_fraction:.0%})"
    st.progress(min(max(job.fraction, 0.0), 1.0), text=text)
    st.caption(
        " → ".join(
            f"✅ {s}" if s in done else (f"⏳ **{s}**" if s == job.stage else s) for s in stages
        )
    )


job = service.current_job(state)
if job is not None and job.active:
    st.button("Cancel", on_click=service.cancel_job, args=(state,), key=Key.CANCEL_BUTTON)

    @st.fragment(run_every=1.0)  # one poll a second per waiting tab: a classroom is 20+ tabs
    def live() -> None:
        j = service.current_job(state)
        show(j)
        if not j.active:
            st.rerun()

    live()
elif job is not None:
    show(job)
    if job.state == "done":
        state[Key.RUN_PATH] = job.out_dir
        st.success("Done")
        st.page_link(
            ui.ALIGNMENT_PAGE, label="See the alignment with gold", icon=":material/track_changes:"
        )
    elif job.state == "cancelled":
        st.warning("Cancelled.")
    else:
        st.error(f"The job failed: {service.public_text(job.error)}")

runs = service.finished_runs(state=state)
with st.expander(f"Finished runs on disk ({len(runs)})"):
    for path in runs[:20]:
        st.markdown(f"* {service.run_label(path)}")
