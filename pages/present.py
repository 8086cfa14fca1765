import html

import streamlit as st

from quasar_core.errors import QuasarError
from quasar_core.wording import plural
from ui import layout, nav, presenting, state

# Large type for a projector, in the theme's own text colour (legible in the light and the dark theme).
BIG = "<p style='font-size:clamp(2rem, 4.2vw, 3.6rem); font-weight:700; line-height:1.15; margin:0.1em 0'>{}</p>"
ANSWER = "<p style='font-size:clamp(1.4rem, 2vw, 2.2rem); font-weight:650; line-height:1.2; margin:0.2em 0'>{}</p>"
PHOTO_SIDE = 240  # "where it looks": three side by side beside what it learned from, on a 1920 x 1080 screen
MISTAKE_SIDE = 150
ICONS = {"familiar": ":material/check_circle:", "unusual": ":material/help:", "unknown": ":material/block:"}


def big(text: str, style: str = BIG) -> None:
    st.markdown(style.format(html.escape(text)), unsafe_allow_html=True)


layout.page_intro("Present", "One screen to show your model to a room: how well it does, what it learned from, and "
                             "a live try.", page=nav.PRESENT)

run = state.current_run()
if layout.need_model(run is not None and run.has_model, "this screen"):
    shown = presenting.summary(run)
    big(shown.headline)
    st.caption(shown.headline_note)

    learned, looks = st.columns([2, 3], gap="large")
    with learned:
        st.subheader("What it learned from")
        for line in shown.learned:
            st.markdown(layout.md(line))
        if shown.counts:
            with st.container(horizontal=True):
                for label, count in shown.counts.items():
                    st.metric(label, plural(count, "photo"), width="content")
    looked = []  # (placeholder, prediction): the photos first, where it looked once worked out (below)
    with looks:
        if shown.examples:
            st.subheader("Where it looks")
            with st.container(horizontal=True):
                for prediction in shown.examples:
                    with st.container(width=PHOTO_SIDE):
                        spot = st.empty()
                        spot.image(presenting.picture(run, prediction), width=PHOTO_SIDE)
                        looked.append((spot, prediction))

    wrong, tried = st.columns([3, 2], gap="large")
    with wrong:
        if shown.mistakes or shown.fair:
            st.subheader("Where it goes wrong, and why that is fair")
            with st.container(horizontal=True):
                for prediction in shown.mistakes:
                    st.image(presenting.picture(run, prediction), width=MISTAKE_SIDE,
                             caption=presenting.mistake_caption(prediction))
            for line in shown.fair:
                st.markdown(layout.md(line))

    with tried:
        st.subheader("Try it")
        uploads = layout.photos_to_try("Show it a photo", key="present")
        if uploads:
            try:
                with st.spinner("Looking…"):
                    answers, problems = presenting.try_it(run, uploads)
            except QuasarError as exc:
                st.error(str(exc))
            else:
                for problem in problems:
                    st.error(layout.md(problem))
                content = dict(uploads)
                for said in answers:
                    with st.container(horizontal=True, vertical_alignment="center"):
                        st.image(content[said.name], width=MISTAKE_SIDE)
                        with st.container():
                            st.markdown(ICONS[said.kind])
                            big(said.text, ANSWER)
    nav.link(nav.EVALUATE, "Back to the details")

    if looked:  # last, so the rest of the screen is there at once
        with st.spinner("Working out where it looked…"):
            for spot, prediction in looked:
                pixels = presenting.overlay(run, prediction)
                if pixels is not None:
                    spot.image(pixels, width=PHOTO_SIDE, caption=presenting.example_caption(prediction))
