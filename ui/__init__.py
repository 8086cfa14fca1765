"""The dashboard's support code: session state, workspace, navigation, shared views.

Nothing in this package imports TensorFlow or Keras at import time (see
tests/app/test_imports.py): the first page must appear before TensorFlow has loaded.
"""
