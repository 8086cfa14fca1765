"""Quasar Nexus dashboard: `streamlit run app.py`. Sets the page up and routes; pages do the rest."""

# pandas first: plotly imports it lazily, and that lazy import races between Streamlit's
# script threads and breaks charts in the live server.
import pandas  # noqa: F401
from pathlib import Path

import streamlit as st

from ui import nav, project, workspace

# A local icon: a material-icon favicon is fetched from Google Fonts on every visit.
st.set_page_config(page_title="Quasar Nexus", page_icon=Path(__file__).parent / "assets" / "icon.png", layout="wide")
page = nav.navigation()
workspace.sync()
nav.sidebar()
project.sidebar_section()  # Save project / Open project, on every page
page.run()
