import streamlit as st

from quasar_core.errors import QuasarError
from quasar_core.presets import BY_NAME, preset_named
from quasar_core.wording import duration
from ui import job_control, layout, nav, settings_form, state, workspace

layout.page_intro(
    "Configure",
    "Choose how the model is trained: a preset is enough, the details are under Advanced.",
)

dataset = state.dataset()
config = state.config() or preset_named(state.preset()).config(dataset)

state.init_widget_values({settings_form.PRESET_KEY: state.preset()})
st.radio("Preset", list(BY_NAME), key=settings_form.PRESET_KEY, horizontal=True,
         captions=[preset.description for preset in BY_NAME.values()],
         on_change=settings_form.apply_preset, args=(dataset,))
size_note = st.empty()  # filled below, once the form has said which size is chosen

with st.expander("Advanced: every setting"):
    values = settings_form.draw(config)
try:
    changed = settings_form.config_from_values(values, config)
except ValueError as exc:
    st.error(f"{exc} Change that setting; training will use the last valid settings until then.")
else:
    if changed != config:  # the user changed a setting in the form (the defaults alone are not a choice)
        state.set_config(changed)
        state.set_settings_chosen(True)
        workspace.keep_settings()
    config = changed
    if dataset is not None and config != preset_named(state.preset()).config(dataset):
        st.caption(f"Started from the {state.preset()} preset, with your changes.")
if dataset is not None:
    size_note.markdown(settings_form.size_sentence(dataset, state.preset(), config))

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
        cached = (f" The features of {plan.cached_views} photos are already computed, so they cost nothing."
                  if plan.cached_views else "")
        best = " It counts every setting Best accuracy tries." if state.preset() == "Best accuracy" else ""
        st.markdown(f"Estimated training time on this computer: **{duration(plan.time.total_seconds)}** for "
                    f"{plan.n_photos} photos.{cached}{best}")
        st.markdown(f"Accuracy will be measured by {layout.md(plan.method)}, and the model you keep learns from every "
                    "photo.")
        st.caption(f"VGG16's arithmetic: {layout.md(plan.precision_reason)}.")
        st.markdown("**Image size trade-off**: bigger images show more detail but take longer. The chosen row is "
                    "the estimate above; the others are for photos not read at that size yet.")
        st.dataframe(
            [{"Image size": f"{row['image_size']} px", "Estimated time": duration(row["seconds"]),
              "Chosen": "✓" if row["image_size"] == config.image_size else ""} for row in plan.sizes],
            hide_index=True, key="size_tradeoff",
        )
    nav.link(nav.TRAIN, "Next: train the model")
