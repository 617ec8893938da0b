"""Data: dataset and model, class counts, the D / H / T split sizes, a gallery per class."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from tmu import plots

state = ui.setup("Data")
c1, c2, c3 = st.columns(3)
c1.selectbox("Dataset", service.datasets(), key=Key.DATASET)
c2.selectbox("Model", service.models(), key=Key.MODEL)
c3.number_input("Seed (split and training)", min_value=0, max_value=10_000, step=1, key=Key.SEED)

try:
    info = service.data_info(state[Key.DATASET], int(state[Key.SEED]))
except ValueError as err:  # DatasetError: files missing, no network, bad folder
    st.error(f"Cannot load {state[Key.DATASET]!r}: {err}")
    st.stop()

cols = st.columns(4)
cols[0].metric("classes", len(info.classes))
for col, (name, n) in zip(cols[1:], info.sizes.items()):
    col.metric(name, n)
st.caption(
    f"Images are {' × '.join(map(str, info.image_shape))} (channels × height × width). "
    f"The split is drawn from seed {state[Key.SEED]}."
)

st.plotly_chart(plots.class_counts(info.counts, info.classes), key="counts")
ui.caption("class_counts")

st.subheader("Samples per class")
for name, montage in service.gallery(state[Key.DATASET]):
    st.image(montage, caption=f"class {name}", width=min(800, montage.shape[1] * 3))
