import streamlit as st

from quasar_core import planning
from quasar_core.data import suggest_image_size
from quasar_core.errors import QuasarError
from ui import job_control, layout, nav, settings_form, state

layout.page_intro(
    "Configure",
    "Choose how the model is trained: a preset is enough, the details are under Advanced.",
)

dataset = state.dataset()
suggested = suggest_image_size(dataset) if dataset is not None else None
config = state.config() or settings_form.preset_config(state.preset(), suggested)

state.init_widget_values({settings_form.PRESET_KEY: state.preset()})
st.radio("Preset", list(planning.PRESETS), key=settings_form.PRESET_KEY, horizontal=True,
         captions=[planning.PRESET_DESCRIPTIONS[name] for name in planning.PRESETS],
         on_change=settings_form.apply_preset, args=(suggested,))
if suggested is not None:
    st.markdown(f"Suggested image size for your photos: **{suggested} px** (about three times their usual "
                "size, at most VGG16's 224 px). The Quick look and Balanced presets use it.")

with st.expander("Advanced: every setting"):
    values = settings_form.draw(config)
try:
    config = settings_form.config_from_values(values, config)
except ValueError as exc:
    st.error(f"{exc} Change that setting; training will use the last valid settings until then.")
else:
    state.set_config(config)
    if config != settings_form.preset_config(state.preset(), suggested):
        st.caption(f"Started from the {state.preset()} preset, with your changes.")

if layout.need(dataset is not None, "Load your photos to see how long training will take and whether it fits "
               "in memory.", nav.UPLOAD, "Upload photos"):
    st.subheader("Before you train")
    needed, problem = job_control.memory_check(dataset, config)
    if problem:
        st.error(problem)
    else:
        st.success(f"Fits in memory: training needs about {needed / 1024**3:.1f} GB.")
    try:
        plan = job_control.plan(dataset, config)
    except QuasarError as exc:
        st.warning(f"The training time cannot be estimated: {exc}")
    else:
        st.markdown(
            f"Estimated training time on this computer: **{planning.format_duration(plan.time.total_seconds)}** "
            f"({plan.n_train} photos to learn from, {plan.n_val} to check progress, {plan.n_test} for the final "
            f"test; {plan.precision} arithmetic)."
        )
        st.markdown("**Image size trade-off**: bigger images show more detail but take longer.")
        st.dataframe(
            [{"Image size": f"{row['image_size']} px", "Estimated time": planning.format_duration(row["seconds"]),
              "Chosen": "✓" if row["image_size"] == config.image_size else ""} for row in plan.sizes],
            hide_index=True, key="size_tradeoff",
        )
    nav.link(nav.TRAIN, "Next: train the model")
