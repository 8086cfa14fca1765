"""Runs: folder.py (the run folder format), learned.py (what a run learned), pipeline.py (train, recover,
evaluate), model_files.py (models from outside), export.py and share_app.py (checked exports), report.py (the
model card)."""
