"""The page registry and the one way to move between pages.

Moving happens with st.switch_page / st.page_link (following a plain URL would start a
new session and lose the loaded photos); both are given the workspace query param,
which st.switch_page would otherwise clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import streamlit as st

from ui import workspace


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to app.py, as st.Page / st.switch_page / AppTest.switch_page take it
    title: str
    icon: str
    section: str


HOME = PageInfo("pages/home.py", "Home", ":material/home:", "Start")
UPLOAD = PageInfo("pages/upload.py", "Upload photos", ":material/upload:", "Make a classifier")
CONFIGURE = PageInfo("pages/configure.py", "Configure", ":material/tune:", "Make a classifier")
TRAIN = PageInfo("pages/train.py", "Train", ":material/model_training:", "Make a classifier")
EVALUATE = PageInfo("pages/evaluate.py", "Evaluate", ":material/fact_check:", "Use it")
PREDICT = PageInfo("pages/predict.py", "Predict", ":material/image_search:", "Use it")
RUNS = PageInfo("pages/runs.py", "Past runs", ":material/history:", "Use it")
COMPARE = PageInfo("pages/compare.py", "Compare", ":material/compare_arrows:", "Understand it")

PAGES: tuple[PageInfo, ...] = (HOME, UPLOAD, CONFIGURE, TRAIN, EVALUATE, PREDICT, RUNS, COMPARE)


def navigation():
    """st.navigation over every page, grouped by section; returns the page to run."""
    sections: dict[str, list] = {}
    for page in PAGES:
        sections.setdefault(page.section, []).append(
            st.Page(page.path, title=page.title, icon=page.icon, default=page is HOME)
        )
    return st.navigation(sections)


def go(page: PageInfo) -> NoReturn:
    st.switch_page(page.path, query_params=workspace.url_params())


def link(page: PageInfo, label: str | None = None, *, disabled: bool = False) -> None:
    st.page_link(page.path, label=label or page.title, icon=page.icon, disabled=disabled,
                 query_params=workspace.url_params())
