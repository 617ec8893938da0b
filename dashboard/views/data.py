"""Data: dataset and model, class counts, the D / H / T split sizes, a gallery per class, and the
user's own images (a zip of class folders) and original model (a .pt file)."""

import streamlit as st

from dashboard import service, ui
from dashboard.service import Key
from dashboard.service.figures import plots

state = ui.setup("Data")
c1, c2, c3 = st.columns(3)
c1.selectbox("Dataset", service.datasets(), format_func=service.dataset_label, key=Key.DATASET)
c2.selectbox("Model", service.models(), key=Key.MODEL)
c3.number_input("Seed (split and training)", min_value=0, max_value=10_000, step=1, key=Key.SEED)
with st.expander("Training regime: recipe, label noise, how much data"):
    r1, r2, r3 = st.columns(3)
    r1.selectbox(
        "Recipe",
        list(service.RECIPE_HELP),
        key=Key.RECIPE,
        help="\n".join(f"* **{k}**: {v}" for k, v in service.RECIPE_HELP.items()),
    )
    r2.slider(
        "Label noise in D and H",
        0.0,
        0.5,
        step=0.05,
        key=Key.LABEL_NOISE,
        help="This fraction of the training set D and of the holdout H get a wrong label before "
        "any model trains (T keeps its labels): real data's annotation errors. A random forget "
        "request then holds noisy samples the original memorised and gold gets 'wrong'.",
    )
    r3.slider(
        "Holdout fraction",
        0.05,
        0.6,
        step=0.05,
        key=Key.HOLDOUT,
        help="The share of the pool held out as H; a larger one leaves a smaller D (weak data: a "
        "retrained model generalizes less, so gold gets more of D_f wrong).",
    )


def import_archive() -> None:
    """Button callback (it runs before the dataset picker is drawn, so it may set it)."""
    try:
        dataset = service.import_upload(state[Key.DATA_UPLOAD].getvalue(), state[Key.DATA_NAME])
    except ValueError as err:  # DatasetError: a bad name, a taken name, a refused archive
        why = service.public_message(err, keep=[state[Key.DATA_NAME]])
        state[Key.UPLOAD_MSG] = service.public_text(f"Not imported: {why}", keep=[why])
    else:
        state[Key.DATASET] = dataset
        state[Key.UPLOAD_MSG] = None


def use_weights() -> None:
    upload = state[Key.WEIGHTS_UPLOAD]
    try:
        service.save_weights(state, upload.getvalue(), upload.name)
    except ValueError as err:  # WeightsError: code inside, truncated, empty
        why = service.public_message(err, keep=[upload.name])
        state[Key.UPLOAD_MSG] = service.public_text(f"Not used: {why}", keep=[why])
    else:
        state[Key.UPLOAD_MSG] = None


def own_data() -> None:
    """Upload a zip of class folders: it becomes a dataset everyone on this server can pick."""
    limits = service.UPLOAD_LIMITS
    upload = st.file_uploader(
        "A zip of class folders (CLASS/IMAGE.png …)",
        type=["zip"],
        key=Key.DATA_UPLOAD,
        help=f"At most {limits.max_files:,} images, {limits.max_classes} classes, "
        f"{limits.max_bytes // 2**20} MB unpacked, {limits.max_pixels / 1e6:.1f} megapixels an "
        f"image and {limits.max_pool_bytes // 2**20} MB once decoded (4 bytes a pixel and "
        "channel; images of mixed sizes become 32 x 32); hidden and non-image files are skipped.",
    )
    name = st.text_input(
        "Dataset name", key=Key.DATA_NAME, max_chars=64, placeholder="letters, digits, _ . -"
    )
    st.button(
        "Import",
        disabled=upload is None or not name,
        on_click=import_archive,
        key=Key.IMPORT_BUTTON,
    )


def own_model() -> None:
    """Upload a state_dict trained elsewhere: this tab's runs use it as the original model."""
    upload = st.file_uploader(
        f"Weights of a {state[Key.MODEL]!r} model trained on this dataset (.pt state_dict)",
        type=["pt", "pth"],
        key=Key.WEIGHTS_UPLOAD,
    )
    st.button(
        "Use as the original model",
        disabled=upload is None,
        on_click=use_weights,
        key=Key.WEIGHTS_BUTTON,
    )
    if state.get(Key.WEIGHTS):  # chosen by this tab: in use, or gone from the store since
        bad = service.check_weights(state)
        if bad:
            why = service.public_text(bad)
            st.warning(f"Your weights `{state[Key.WEIGHTS_NAME]}` cannot be used: {why}")
        else:
            st.success(
                f"Runs from this tab unlearn your weights `{state[Key.WEIGHTS_NAME]}` instead "
                "of training an original model."
            )
        st.button(
            "Train the original model instead",
            on_click=service.clear_weights,
            args=(state,),
            key=Key.TRAIN_BUTTON,
        )


message = state.pop(Key.UPLOAD_MSG, None)
with st.expander("Bring your own images or model", expanded=bool(message)):
    if message:
        st.error(service.public_text(message))
    left, right = st.columns(2)
    with left:
        st.markdown("**Your images**")
        own_data()
    with right:
        st.markdown("**Your trained model**")
        own_model()

try:
    info = service.data_info(state[Key.DATASET], int(state[Key.SEED]), float(state[Key.HOLDOUT]))
except ValueError as err:  # DatasetError: files missing, no network, bad folder
    label = service.dataset_label(state[Key.DATASET])
    st.error(f"Cannot load {label!r}: {service.public_message(err)}")
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
