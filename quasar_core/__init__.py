"""Quasar Nexus's engine: transfer learning from VGG16 on a folder of labelled photos, without Streamlit.

    from quasar_core.data import load_dataset
    from quasar_core.training import TransferClassifier
    classifier = TransferClassifier().fit(load_dataset("photos.zip"))

See ARCHITECTURE.md for the parts and which way imports go.
"""

__version__ = "0.3.0"
