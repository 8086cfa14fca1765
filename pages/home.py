import streamlit as st

from quasar_core import sample
from quasar_core.errors import QuasarError
from quasar_core.presets import DEFAULT
from ui import layout, nav, state, workspace

layout.page_intro(
    "Quasar Nexus",
    "Turn a folder of labelled photos into an image classifier you can trust, in minutes, and see why it works.",
)

st.subheader("How it works")
st.markdown(
    "Quasar Nexus starts from VGG16, a network that has already learned to see by studying "
    "1.2 million ImageNet photos. It keeps everything VGG16 knows about edges, textures and shapes, "
    "and only teaches it to tell *your* classes apart. That is transfer learning: because most of "
    "the learning is already done, a few dozen photos per class and a few minutes on an ordinary "
    "computer are enough. Every number it shows is measured on photos the model being tested never saw."
)

st.subheader("Your progress")
run = state.current_run()
steps = [
    (nav.UPLOAD, "Photos loaded", state.dataset() is not None),
    (nav.CONFIGURE, "Settings chosen", state.settings_chosen()),
    (nav.TRAIN, "Model trained", run is not None and run.has_model),
    (nav.EVALUATE, "Model evaluated", run is not None and run.metrics is not None),
]
for column, (page, label, done) in zip(st.columns(len(steps)), steps):
    with column:
        st.markdown(f"{':material/check_circle:' if done else ':material/radio_button_unchecked:'} **{label}**")
        nav.link(page)

st.subheader("No photos at hand?")
st.markdown("Try it with 300 small photos of clothing in 5 classes: the settings are chosen for you "
            "and training starts at once.")
if st.button("Try it with the sample dataset", key="try_sample", type="primary"):
    try:
        dataset = sample.load_sample()
    except QuasarError as exc:
        st.error(str(exc))
    else:
        state.set_preset(DEFAULT.name)
        state.set_settings_chosen(True)
        state.set_config(DEFAULT.config(dataset))
        workspace.keep_photos(dataset)
        state.request_autostart()
        nav.go(nav.TRAIN)
