"""The page registry, the app's own navigation, and the one way to move between pages.

Streamlit's automatic page list is switched off (``client.showSidebarNavigation = false``):
it would be drawn from the ``pages/`` file names (app, compare, configure…) before the script
runs. The sidebar shows this registry's titles instead, grouped by section. Moving happens
with st.switch_page / st.page_link (following a plain URL would start a new session); both
carry the workspace query param, which st.switch_page would otherwise clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import streamlit as st

from ui import state, workspace


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to app.py, as st.Page / st.switch_page / AppTest.switch_page take it
    title: str
    icon: str
    section: str


HOME = PageInfo("pages/home.py", "Home", ":material/home:", "Start")
UPLOAD = PageInfo("pages/upload.py", "Upload photos", ":material/upload:", "Make a classifier")
CHECK = PageInfo("pages/check.py", "Check my photos", ":material/health_and_safety:", "Make a classifier")
CONFIGURE = PageInfo("pages/configure.py", "Configure", ":material/tune:", "Make a classifier")
TRAIN = PageInfo("pages/train.py", "Train", ":material/model_training:", "Make a classifier")
LABEL = PageInfo("pages/label.py", "Label more", ":material/label:", "Make a classifier")
EVALUATE = PageInfo("pages/evaluate.py", "Evaluate", ":material/fact_check:", "Use it")
PREDICT = PageInfo("pages/predict.py", "Predict", ":material/image_search:", "Use it")
PRESENT = PageInfo("pages/present.py", "Present", ":material/slideshow:", "Use it")
RUNS = PageInfo("pages/runs.py", "Past runs", ":material/history:", "Use it")
COMPARE = PageInfo("pages/compare.py", "Compare", ":material/compare_arrows:", "Understand it")

PAGES: tuple[PageInfo, ...] = (HOME, UPLOAD, CHECK, CONFIGURE, TRAIN, LABEL, EVALUATE, PREDICT, PRESENT, RUNS, COMPARE)


def navigation():
    """st.navigation over every page (hidden: the sidebar below is the app's own); returns the page to run."""
    pages = [st.Page(page.path, title=page.title, icon=page.icon, default=page is HOME) for page in PAGES]
    return st.navigation(pages, position="hidden")


def through_app() -> None:
    """Make sure the page runs after app.py (the workspace, the sidebar); rerun through it if not.

    The first request after a server start that names a page (an open tab reconnecting to /train)
    runs pages/train.py alone: Streamlit's pages/-folder fallback, used until st.navigation has run
    once in the process. Calling it here ends the fallback, so the rerun goes through app.py.
    """
    if state.workspace_id() is None:
        navigation()
        st.rerun()


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### Quasar Nexus")
        section = None
        for page in PAGES:
            if page.section != section:
                section = page.section
                st.caption(section)
            link(page)


def go(page: PageInfo) -> NoReturn:
    st.switch_page(page.path, query_params=workspace.url_params())


def link(page: PageInfo, label: str | None = None, *, disabled: bool = False) -> None:
    st.page_link(page.path, label=label or page.title, icon=page.icon, disabled=disabled,
                 query_params=workspace.url_params())
