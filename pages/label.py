import streamlit as st

from quasar_core import charts
from quasar_core.wording import confidence, plural
from ui import labelling, layout, nav, state

PER_ROW = 4
SHOWN_SURE = 24

layout.page_intro(
    "Label more",
    "Let the model pre-label your unlabelled photos: answer the few it asks about, accept the ones it is sure of, and "
    "see what each round of labels buys.",
)

def answer_words(item) -> str:
    """The model's answer in one of the three forms (familiar, unusual, unknown)."""
    if item.answer == "unknown":
        return f"This doesn't look like any of your classes (the closest is {item.suggested})."
    if item.answer == "unusual":
        return (f"Not sure: this photo looks unusual for your classes; the closest is {item.suggested} "
                f"({confidence(item.confidence, 0)}).")
    return f"Looks like {item.suggested} ({confidence(item.confidence, 0)} sure)."


REASON_WORDS = {"uncertain": "Asked because the model hesitates between two classes.",
                "diverse": "Asked because it shows something the model has seen little of."}


def card(round_, item, made) -> None:
    picture = layout.thumbnail(round_.pool, item.position)
    if picture is not None:
        st.image(picture, width="stretch")
    st.caption(f"{layout.md(layout.file_base_name(item.file))}: {layout.md(answer_words(item))} "
               f"{REASON_WORDS.get(item.reason, '')}")
    decided = made.get(item.file)
    if decided is not None:
        st.markdown(f"*{layout.md(layout.first_capital(decided.words()))}*")
        st.button("Undo", key=f"undo_{item.file}", on_click=labelling.undo, args=(item.file,))
        return
    st.pills("Its class", round_.labels, default=item.suggested, key=f"pick_{item.file}",
             on_change=labelling.picked, args=(item.file, f"pick_{item.file}"),
             help="Pick another class to label the photo with it at once.")
    with st.container(horizontal=True):
        st.button(f"Confirm «{item.suggested}»", key=f"confirm_{item.file}", type="primary",
                  on_click=labelling.confirm, args=(item.file, item.suggested))
        st.button("Skip", key=f"skip_{item.file}", on_click=labelling.skip, args=(item.file,))
        st.button("Not any of these", key=f"none_{item.file}", on_click=labelling.none_of_these, args=(item.file,))


def sure_card(round_, item) -> None:
    picture = layout.thumbnail(round_.pool, item.position)
    if picture is not None:
        st.image(picture, width="stretch")
    st.caption(f"{layout.md(layout.file_base_name(item.file))}: {layout.md(item.suggested)} "
               f"({confidence(item.confidence, 0)} sure)")


def grid(items, draw) -> None:
    for start in range(0, len(items), PER_ROW):
        for column, item in zip(st.columns(PER_ROW), items[start : start + PER_ROW]):
            with column:
                draw(item)


run = state.current_run()
pool = labelling.photos_to_label()
if layout.need(pool is not None, "There are no photos to label yet. On the Upload page, add your unlabelled photos "
               "(a zip or a folder without class folders) under “Photos to label”.", nav.UPLOAD,
               "Upload photos to label"):
    problem = labelling.why_not(run)
    if problem is not None:
        layout.need(False, problem, nav.TRAIN, "Train a model", (nav.RUNS, "Or choose one in Past runs"))
    else:
        if labelling.features_missing(run):
            bar = st.progress(0.0, text="Reading the photos through VGG16 once…")
            labelling.read_photos(run, lambda done, total: bar.progress(
                done / max(total, 1), text=f"Reading the photos through VGG16 once: {done} of {total}"))
            bar.empty()
        current = labelling.current_round(run)
        made = labelling.decisions()
        found = current.suggestions
        st.plotly_chart(charts.labelling_rounds_figure(labelling.rounds()), key="label_rounds")
        if (notice := state.take_notice()) is not None:  # below the chart: the chart keeps its place on the page
            st.success(notice)
        sure = [item for item in found.confident if item.file not in made]
        next_tab, sure_tab, done_tab = st.tabs([f"Label these next ({len(found.next)})",
                                                f"Sure ones ({len(sure)})", f"Your labels ({len(made)})"])
        with next_tab:
            st.markdown(f"**Round {current.number}.** Confirm the model's guess with one click, pick another class, "
                        "skip a photo, or say it is none of your classes. Your uploaded files are never changed; "
                        "every label can be undone.")
            if found.next:
                grid(found.next, lambda item: card(current, item, made))
            else:
                st.success("Nothing left to ask about: every photo is labelled, decided or in the sure ones.")
            waiting = labelling.labelled_this_round()
            st.button(f"Learn from these labels ({plural(waiting, 'new label')})", key="learn", type="primary",
                      disabled=waiting == 0, on_click=labelling.learn, args=(run,),
                      help="The model learns again from every label (seconds: the photos were read once) and asks "
                           "about the next photos.")
        with sure_tab:
            if found.band is None or not found.confident:
                st.info("The model is not sure enough of any photo yet. Label a round or two, and the photos it "
                        "is sure of will show here.")
            elif not sure:
                st.success("You accepted every pre-label it was sure of in this round.")
            else:
                st.markdown(f"The model is sure of **{plural(len(sure), 'photo')}**: {found.band.words()} "
                            f"(measured on your labelled photos, each by a model that never saw it).")
                st.button(f"Accept these {plural(len(sure), 'pre-label')}", key="accept_sure", type="primary",
                          on_click=labelling.accept_band, args=([(i.file, i.suggested) for i in sure],))
                grid(sure[:SHOWN_SURE], lambda item: sure_card(current, item))
                if len(sure) > SHOWN_SURE:
                    st.caption(f"Showing {SHOWN_SURE} of {len(sure)}; accepting takes them all.")
        with done_tab:
            if not made:
                st.info("No labels yet: the photos you label, skip or set aside are listed here, each with Undo.")
            for file, decision in reversed(list(made.items())):
                words, undo = st.columns([4, 1])
                words.markdown(f"**{layout.md(file)}**: {layout.md(decision.words())} (round {decision.round or 1})")
                undo.button("Undo", key=f"undo_done_{file}", on_click=labelling.undo, args=(file,))
            if made:
                st.button("Undo this round's labels", key="undo_round", on_click=labelling.undo_round)
        with st.expander("Details for specialists"):
            band = found.band
            st.markdown(
                f"Strategy: margin sampling among the {labelling.POOL_FACTOR} x {labelling.COUNT} most uncertain "
                f"photos, spread by k-means in VGG16's feature space (the photo nearest each cluster's centre); photos "
                f"in the confident band are not asked about. Model: softmax regression on square-"
                f"rooted, standardised pooled features, regularisation chosen by cross-validation, temperature-"
                f"calibrated; accuracy measured out of fold on {plural(current.measured['tested'], 'photo')} "
                f"labelled before label assist. Answers: {', '.join(f'{k} {v}' for k, v in found.answers.items())}. "
                + ("Confident band: probabilities averaged over up to 20 look-alike unlabelled photos and "
                   "recalibrated by a temperature fitted out of fold on the photos labelled before label assist; the "
                   "surest familiar photos whose mean expected error stays at most 3 %: threshold "
                   f"{band.threshold:.3f}, stated error {band.stated_error:.3f}; out of fold {band.wrong_there} wrong "
                   f"of {band.checked_on} at or above it." if band is not None else "No confident band."))
        nav.link(nav.TRAIN, "Train a full model with these labels (the model card says how they were labelled)")
